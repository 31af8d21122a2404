"""Softmax multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``.

Vaswani et al. (2017), "Attention Is All You Need", Sec. 3.2; rotary position embedding from Su et al.
(2021), "RoFormer". Causal or not; the causal block decodes with a KV cache, so its state grows with T
(``constant_state = False``), unlike the recurrent blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.rotary import RotaryEmbedding
from seqlab.core.registry import register_block
from torch import nn


@register_block("attention")
class Attention(nn.Module):
    """Multi-head softmax attention; state ``{"k", "v"}``: the KV cache ``[B, H, T_past, Dh]``.

    Args:
        d_model: input/output width.
        num_heads: heads; ``d_model`` must be divisible by it.
        causal: mask future positions (then ``step`` decodes with the KV cache).
        rotary: apply rotary embedding to q and k.
        rotary_dim: rotated channels per head (default: the whole head).
        rotary_base: rotary frequency base.
        qkv_bias: bias on the q/k/v projection.
        dropout: attention-probability dropout (training only).
    """

    constant_state = False

    def __init__(self, d_model: int, num_heads: int = 4, causal: bool = True, rotary: bool = True,
                 rotary_dim: int | None = None, rotary_base: float = 10000.0, qkv_bias: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"attention: d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=qkv_bias)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(rotary_dim or self.head_dim, rotary_base) if rotary else None

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """An empty KV cache (causal) or ``None`` (non-causal)."""
        if not self.causal:
            return None
        dtype = dtype or self.qkv.weight.dtype
        z = torch.zeros(batch_size, self.num_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"k": z, "v": z.clone()}

    def forward(self, x: torch.Tensor, state=None):
        check_seq("attention", x, self.d_model)
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).unbind(2)  # [B, T, H, Dh]
        past = 0
        if self.causal and state is not None:
            past = state["k"].shape[2]
        if self.rotary is not None:
            q, k = self.rotary(q, past), self.rotary(k, past)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # [B, H, T, Dh]
        if self.causal and state is not None:
            k = torch.cat([state["k"].to(k.dtype), k], dim=2)
            v = torch.cat([state["v"].to(v.dtype), v], dim=2)
        drop = self.dropout if self.training else 0.0
        if not self.causal:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        elif past == 0:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:  # queries sit at positions past..past+t-1 of the cache
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = self.out_proj(o.transpose(1, 2).reshape(b, t, self.d_model))
        return y, ({"k": k, "v": v} if self.causal else None)

    def step(self, x_t: torch.Tensor, state):
        """Decode one token with the KV cache (causal only)."""
        if not self.causal:
            raise ValueError("attention: step needs causal=True")
        check_step("attention", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
