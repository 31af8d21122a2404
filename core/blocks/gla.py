"""Gated Linear Attention (GLA) layer over ``seqlab.kernels.gla``.

Yang et al. (2024), "Gated Linear Attention Transformers with Hardware-Efficient Training", Sec. 4.1
(the GLA layer: data-dependent low-rank vector gate ``alpha_t = sigmoid(W2 W1 x_t + b)^(1/tau)``,
``tau = 16``, output gate and per-head norm); reference code fla-org/flash-linear-attention
``fla/layers/gla.py`` (``GatedLinearAttention``: ``gk = logsigmoid(gk_proj(x)) / gate_logit_normalizer``,
``o = rmsnorm(o) * swish(g_proj(x))`` per head, ``o_proj``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.norm import GatedRMSNorm
from seqlab.core.registry import register_block
from torch import nn


@register_block("gla")
class GatedLinearAttention(nn.Module):
    """GLA layer; state ``[B, H, K_head, V_head]`` fp32.

    Args:
        d_model: input/output width.
        num_heads: heads.
        expand_k: key width ``expand_k * d_model`` (fla default 0.5).
        expand_v: value width ``expand_v * d_model``.
        gate_low_rank_dim: rank of the forget-gate projection (16).
        gate_logit_normalizer: tau, divides ``logsigmoid`` (16).
        use_output_gate: swish output gate (else plain per-head RMSNorm).
        norm_eps: eps of the per-head norm.
    """

    causal = True

    def __init__(self, d_model: int, num_heads: int = 4, expand_k: float = 0.5, expand_v: float = 1.0,
                 gate_low_rank_dim: int = 16, gate_logit_normalizer: float = 16.0, use_output_gate: bool = True,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model, self.num_heads = d_model, num_heads
        self.key_dim, self.value_dim = int(d_model * expand_k), int(d_model * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"gla: key/value widths {self.key_dim}/{self.value_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.head_k, self.head_v = self.key_dim // num_heads, self.value_dim // num_heads
        self.gate_logit_normalizer = gate_logit_normalizer
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d_model, gate_low_rank_dim, bias=False),
                                     nn.Linear(gate_low_rank_dim, self.key_dim, bias=True))
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False) if use_output_gate else None
        self.g_norm = (GatedRMSNorm(self.head_v, eps=norm_eps) if use_output_gate else None)
        self.o_norm = None if use_output_gate else nn.RMSNorm(self.head_v, eps=norm_eps)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=2 ** -2.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero state."""
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        return torch.zeros(batch_size, self.num_heads, self.head_k, self.head_v, device=device, dtype=sdt)

    def forward(self, x: torch.Tensor, state=None):
        check_seq("gla", x, self.d_model)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_k)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_k)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_v)
        # In x's dtype, as fla's layer does (the kernel accumulates the gates in float32 inside each chunk);
        # a float32 copy here cost a cast, float32 elementwise ops and 2x the gate bytes in the kernels.
        gk = (F.logsigmoid(self.gk_proj(x)) / self.gate_logit_normalizer).view(b, t, self.num_heads, self.head_k)
        o, S = _ops.gla(q, k, v, gk, self.head_k ** -0.5, state)
        if self.g_norm is not None:
            o = self.g_norm(o, self.g_proj(x).view(b, t, self.num_heads, self.head_v))
        else:
            o = self.o_norm(o)
        return self.o_proj(o.reshape(b, t, self.value_dim)), S

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("gla", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
