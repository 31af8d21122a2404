"""Mamba (Mamba-1) selective state-space mixer over ``seqlab.kernels.scan1``.

Gu & Dao (2023), "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", Sec. 3.2 (Algorithm 2)
and Sec. 3.4; reference code state-spaces/mamba ``mamba_ssm/modules/mamba_simple.py`` (``Mamba``) and
``mamba_ssm/ops/selective_scan_interface.py`` (``selective_scan_ref``).

``in_proj`` -> (x, z); x -> causal depthwise conv1d -> SiLU; ``x_proj`` gives the input-dependent
``dt`` (rank ``dt_rank``, then ``dt_proj`` and softplus), ``B`` and ``C``; with ``A = -exp(A_log)`` the
zero-order hold gives ``dA = exp(dt * A)`` and ``dB x = dt * B * x``; the scan
``h_t = dA_t * h_{t-1} + dB_t x_t`` runs over ``d_inner x d_state`` channels flattened into one
``scan1`` (log-space gate ``dt * A``); ``y = C . h + D * x``, gated by ``SiLU(z)``, then ``out_proj``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.conv import ShortConvolution
from seqlab.core.registry import register_block
from torch import nn


def dt_bias_init(n: int, dt_min: float, dt_max: float, dt_init_floor: float) -> torch.Tensor:
    """Inverse-softplus of ``dt`` drawn log-uniformly in ``[dt_min, dt_max]`` (``mamba_simple.py``)."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


@register_block("mamba")
class Mamba(nn.Module):
    """Mamba-1 block; state ``{"conv": [B, d_inner, d_conv-1], "ssm": [B, d_inner*d_state] fp32}``.

    Args:
        d_model: input/output width.
        d_state: SSM state size N per channel (paper: 16).
        d_conv: causal conv kernel (paper: 4).
        expand: ``d_inner = expand * d_model`` (paper: 2).
        dt_rank: rank of the dt projection (default ``ceil(d_model / 16)``).
        dt_min: smallest initial dt.
        dt_max: largest initial dt.
        dt_init_floor: floor of the initial dt.
        conv_bias: bias on the conv.
        bias: bias on in/out projections.
    """

    causal = True

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = ShortConvolution(self.d_inner, d_conv, bias=conv_bias, activation="silu")  # SiLU fused
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt_bias_init(self.d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-real init: A_n = -(n + 1)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # [d_inner, N]
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero conv cache and SSM state (fp32, or float64 for float64 runs)."""
        dtype = dtype or self.in_proj.weight.dtype
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        return {"conv": self.conv1d.init_cache(batch_size, device=device, dtype=dtype),
                "ssm": torch.zeros(batch_size, self.d_inner * self.d_state, device=device, dtype=sdt)}

    def forward(self, x: torch.Tensor, state=None):
        check_seq("mamba", x, self.d_model)
        b, t, _ = x.shape
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # [B, T, d_inner] each
        xs, conv_state = self.conv1d(xs, None if state is None else state["conv"])  # conv, then SiLU
        dt, B, C = self.x_proj(xs).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt).float())  # [B, T, d_inner], delta_bias inside dt_proj
        A = -torch.exp(self.A_log.float())  # [d_inner, N]
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        # outer products and the C contraction as einsums: their backward is a batched matmul, not a broadcast
        # product then a sum over a [B, T, d_inner, N] temporary
        log_a = torch.einsum("btd,dn->btdn", dt.to(acc), A.to(acc)).to(x.dtype)  # [B, T, d_inner, N]
        bu = torch.einsum("btd,btn->btdn", dt.to(acc) * xs.to(acc), B.to(acc)).to(x.dtype)
        h, h_last = _ops.scan1(log_a.reshape(b, t, -1), bu.reshape(b, t, -1),
                               None if state is None else state["ssm"])
        y = torch.einsum("btdn,btn->btd", h.view(b, t, self.d_inner, self.d_state), C.to(h.dtype)).to(x.dtype)
        y = (y + xs * self.D.to(x.dtype)) * F.silu(z)
        return self.out_proj(y), {"conv": conv_state, "ssm": h_last}

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("mamba", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
