"""RetNet multi-scale retention over ``seqlab.kernels.simple_gla``.

Sun et al. (2023), "Retentive Network: A Successor to Transformer for Large Language Models", Sec. 2.2
(multi-scale retention: fixed per-head decays ``gamma_h = 1 - 2^(-5-h)``, GroupNorm per head, swish gate);
reference code microsoft/torchscale ``torchscale/component/multiscale_retention.py`` and its kernel-based
port fla-org/flash-linear-attention ``fla/layers/multiscale_retention.py`` (rotary on q/k, value width
``expand_v * D``, ``rmsnorm(o) * swish(g)`` per head, then ``o_proj``). Retention
``S_t = gamma S_{t-1} + k_t v_t^T``, ``o_t = q_t S_t`` is ``simple_gla`` with a constant ``g = log gamma``.
"""
from __future__ import annotations

import math

import torch
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.norm import GatedRMSNorm
from seqlab.core.layers.rotary import RotaryEmbedding
from seqlab.core.registry import register_block
from torch import nn


@register_block("retnet")
class MultiScaleRetention(nn.Module):
    """Multi-scale retention; state ``{"S": [B, H, K, V] fp32, "offset": int}`` (offset: rotary position).

    Args:
        d_model: input/output width.
        num_heads: heads.
        expand_k: key width ``expand_k * d_model``.
        expand_v: value width ``expand_v * d_model`` (RetNet: 2).
        rotary: rotary (xPos-like relative position) on q and k.
        norm_eps: eps of the per-head RMS group norm.
    """

    causal = True

    def __init__(self, d_model: int, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 2.0,
                 rotary: bool = True, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model, self.num_heads = d_model, num_heads
        self.key_dim, self.value_dim = int(d_model * expand_k), int(d_model * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"retnet: key/value widths {self.key_dim}/{self.value_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.head_k, self.head_v = self.key_dim // num_heads, self.value_dim // num_heads
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        self.rotary = RotaryEmbedding(self.head_k) if rotary and self.head_k % 2 == 0 else None
        self.g_norm = GatedRMSNorm(self.head_v, eps=norm_eps, norm_before_gate=True)
        # gamma_h = 1 - 2^(-5 - h): the fixed multi-scale decays
        self.register_buffer("log_gamma", torch.log(1 - 2.0 ** (-5.0 - torch.arange(num_heads, dtype=torch.float64))),
                             persistent=False)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.g_proj, self.o_proj):
            nn.init.xavier_uniform_(lin.weight, gain=2 ** -2.5)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero retention state and position 0."""
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        return {"S": torch.zeros(batch_size, self.num_heads, self.head_k, self.head_v, device=device, dtype=sdt),
                "offset": 0}

    def forward(self, x: torch.Tensor, state=None):
        check_seq("retnet", x, self.d_model)
        b, t, _ = x.shape
        offset = 0 if state is None else int(state["offset"])
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_k)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_k)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_v)
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        g = self.log_gamma.to(device=x.device, dtype=acc).expand(b, t, self.num_heads)
        o, S = _ops.simple_gla(q, k, v, g, 1.0 / math.sqrt(self.head_k), None if state is None else state["S"])
        gate = self.g_proj(x).view(b, t, self.num_heads, self.head_v)
        o = self.g_norm(o, gate).reshape(b, t, self.value_dim)
        return self.o_proj(o), {"S": S, "offset": offset + t}

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("retnet", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
