"""Mamba-2 (SSD) mixer over ``seqlab.kernels.simple_gla``.

Dao & Gu (2024), "Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured
State Space Duality", Sec. 7 (the Mamba-2 block) and Sec. 6 (SSD); reference code state-spaces/mamba
``mamba_ssm/modules/mamba2_simple.py`` (``Mamba2Simple``) and ``mamba_ssm/ops/triton/ssd_combined.py``.

One ``in_proj`` gives (z, x, B, C, dt) in parallel; a causal depthwise conv + SiLU runs over (x, B, C);
``dt = softplus(dt + dt_bias)``; ``A = -exp(A_log)`` is one scalar per head. The SSD recurrence
``h_t = exp(dt_t A) h_{t-1} + B_t (dt_t x_t)^T``, ``y_t = C_t^T h_t + D x_t`` is exactly scalar-decay
linear attention: ``simple_gla(q=C, k=B, v=dt*x, g=dt*A, scale=1)``. The output goes through the gated
RMSNorm ``rmsnorm(y * silu(z))`` (``norm_before_gate=False``) and ``out_proj``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.blocks.mamba import dt_bias_init
from seqlab.core.layers.conv import ShortConvolution
from seqlab.core.layers.norm import GatedRMSNorm
from seqlab.core.registry import register_block
from torch import nn


@register_block("mamba2")
class Mamba2(nn.Module):
    """Mamba-2 block; state ``{"conv": [B, conv_dim, d_conv-1], "ssm": [B, H, d_state, headdim] fp32}``.

    Args:
        d_model: input/output width.
        d_state: state size N per head (Mamba-2 default 128; 64 here).
        d_conv: causal conv kernel.
        expand: ``d_inner = expand * d_model``.
        headdim: channels P per head; ``d_inner`` must be divisible by it.
        ngroups: groups of B/C shared across heads (like GQA).
        A_init_range: uniform range of the initial ``-A``.
        dt_min: smallest initial dt.
        dt_max: largest initial dt.
        dt_init_floor: floor of the initial dt.
        conv_bias: bias on the conv.
        bias: bias on in/out projections.
    """

    causal = True

    def __init__(self, d_model: int, d_state: int = 64, d_conv: int = 4, expand: int = 2, headdim: int = 64,
                 ngroups: int = 1, A_init_range: tuple[float, float] = (1.0, 16.0), dt_min: float = 1e-3,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, conv_bias: bool = True,
                 bias: bool = False) -> None:
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"mamba2: d_inner = expand * d_model = {d_inner} must be divisible by headdim={headdim}")
        self.d_model, self.d_inner, self.d_state, self.headdim = d_model, d_inner, d_state, headdim
        self.nheads = d_inner // headdim
        if self.nheads % ngroups:
            raise ValueError(f"mamba2: nheads={self.nheads} must be divisible by ngroups={ngroups}")
        self.ngroups = ngroups
        self.conv_dim = d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + self.nheads, bias=bias)
        self.conv1d = ShortConvolution(self.conv_dim, d_conv, bias=conv_bias, activation="silu")  # SiLU fused
        self.dt_bias = nn.Parameter(dt_bias_init(self.nheads, dt_min, dt_max, dt_init_floor))
        self.A_log = nn.Parameter(torch.empty(self.nheads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(d_inner, eps=1e-5, norm_before_gate=False)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero conv cache and SSM state."""
        dtype = dtype or self.in_proj.weight.dtype
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        return {"conv": self.conv1d.init_cache(batch_size, device=device, dtype=dtype),
                "ssm": torch.zeros(batch_size, self.nheads, self.d_state, self.headdim, device=device, dtype=sdt)}

    def forward(self, x: torch.Tensor, state=None):
        check_seq("mamba2", x, self.d_model)
        b, t, _ = x.shape
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.conv_dim, self.nheads], dim=-1)
        xbc, conv_state = self.conv1d(xbc, None if state is None else state["conv"])  # conv, then SiLU
        xs, B, C = xbc.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        dt = F.softplus(dt.to(acc) + self.dt_bias.to(acc))  # [B, T, H]
        A = -torch.exp(self.A_log.to(acc))  # [H]
        xs = xs.view(b, t, self.nheads, self.headdim)
        # [B, T, ngroups, N]: simple_gla's grouped q/k heads (head h uses group h // (H / ngroups)), as the
        # reference SSD kernels take ngroups; nothing is copied per head
        B = B.reshape(b, t, self.ngroups, self.d_state)
        C = C.reshape(b, t, self.ngroups, self.d_state)
        v = torch.mul(xs, dt[..., None]).to(x.dtype)  # the product in float32 (type promotion), one rounding
        y, ssm = _ops.simple_gla(C, B, v, dt * A, 1.0, None if state is None else state["ssm"])
        y = torch.addcmul(y, xs, self.D.to(x.dtype)[:, None])  # y + D x in one kernel
        y = self.norm(y.reshape(b, t, self.d_inner), z)
        return self.out_proj(y), {"conv": conv_state, "ssm": ssm}

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("mamba2", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
