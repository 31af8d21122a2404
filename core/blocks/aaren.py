"""Aaren: attention as a many-to-many RNN, over ``seqlab.kernels.prefix_attention``.

Feng et al. (2024), "Attention as an RNN", Sec. 3.3 (Aaren): the query is a learned token (one per head),
not a function of the input; keys and values are linear maps of the input; the output at step t is
softmax attention of that query over ``x_1 .. x_t``, ``o_t = sum_{i<=t} softmax(s_{1..t})_i v_i`` with
``s_i = q . k_i / sqrt(d_head)``, computed by the parallel prefix scan of Sec. 3.2 (running max,
numerator, denominator). Heads are concatenated and mapped back by ``out_proj``. The step state is the
triple ``(m [B, H], u [B, H, Dh], w [B, H])``: constant in T.
"""
from __future__ import annotations

import math

import torch
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.registry import register_block
from torch import nn


@register_block("aaren")
class Aaren(nn.Module):
    """Aaren block; state ``(m, u, w)`` of the prefix softmax.

    Args:
        d_model: input/output width.
        num_heads: heads (each with its own learned query).
    """

    causal = True

    def __init__(self, d_model: int, num_heads: int = 4) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"aaren: d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.query = nn.Parameter(torch.randn(num_heads, self.head_dim) / math.sqrt(self.head_dim))
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """The empty prefix: ``m = -inf``, ``u = 0``, ``w = 0``."""
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        h, v = self.num_heads, self.head_dim
        return (torch.full((batch_size, h), float("-inf"), device=device, dtype=sdt),
                torch.zeros(batch_size, h, v, device=device, dtype=sdt),
                torch.zeros(batch_size, h, device=device, dtype=sdt))

    def forward(self, x: torch.Tensor, state=None):
        check_seq("aaren", x, self.d_model)
        b, t, _ = x.shape
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_dim)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_dim)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        s = torch.einsum("bthd,hd->bth", k.to(acc), self.query.to(acc)) / math.sqrt(self.head_dim)
        o, state = _ops.prefix_attention(s, v, state)
        return self.out_proj(o.reshape(b, t, self.d_model).to(x.dtype)), state

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("aaren", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
