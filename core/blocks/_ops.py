"""Calls into ``seqlab.kernels`` for the blocks.

Blocks go through the public ops (dispatch: Triton on CUDA, the chunked PyTorch form elsewhere). The
public ops accept float32/float16/bfloat16; float64 (used by the contract tests as an exact oracle) is
routed to the same chunked PyTorch forms in ``kernels/<op>/reference.py``, which keep float64.
"""
from __future__ import annotations

import torch


def scan1(log_a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``h_t = exp(log_a_t) * h_{t-1} + b_t`` over ``[B, T, D]``; returns ``(h, h_T)``."""
    if b.dtype == torch.float64:
        from seqlab.kernels.scan1.reference import scan1_chunked

        return scan1_chunked(log_a.exp(), b, h0)
    from seqlab.kernels import scan1 as _scan1

    # always pass h0 (zeros when None): the block state is then float32 [B, D] on every backend
    h0 = b.new_zeros(b.shape[0], b.shape[2], dtype=torch.float32) if h0 is None else h0.float().contiguous()
    return _scan1(None, b.contiguous(), log_a=log_a.contiguous(), initial_state=h0, output_final_state=True)


def _zero_state(v: torch.Tensor, k_dim: int) -> torch.Tensor:
    b, _, h, vd = v.shape
    return v.new_zeros(b, h, k_dim, vd, dtype=torch.float32)


def simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
               h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar-decay linear attention, q/k ``[B, T, H, K]``, v ``[B, T, H, V]``, g ``[B, T, H]``."""
    if v.dtype == torch.float64:
        from seqlab.kernels.simple_gla.reference import simple_gla_chunked

        return simple_gla_chunked(q, k, v, g, scale, h0)
    from seqlab.kernels.simple_gla import simple_gla as _op

    # always pass h0: the torch backward (torch.func.vjp in kernels/simple_gla/__init__.py) fails on h0=None
    h0 = _zero_state(v, q.shape[-1]) if h0 is None else h0.float().contiguous()
    return _op(q.contiguous(), k.contiguous(), v.contiguous(), g.float().contiguous(), scale,
               initial_state=h0, output_final_state=True)


def gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
        h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Vector-decay gated linear attention, g ``[B, T, H, K]``."""
    if v.dtype == torch.float64:
        from seqlab.kernels.gla.reference import gla_chunked

        return gla_chunked(q, k, v, g, scale, h0, True)
    from seqlab.kernels.gla import gla as _op

    h0 = None if h0 is None else h0.float().contiguous()
    return _op(q.contiguous(), k.contiguous(), v.contiguous(), g.contiguous(), scale,
               initial_state=h0, output_final_state=True)


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) + 1e-6)


def delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, scale: float,
               h0: torch.Tensor | None, *, g: torch.Tensor | None = None, qk_l2norm: bool = True,
               allow_neg_eigval: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Delta rule ``S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T``; beta ``[B, T, H]``."""
    if v.dtype == torch.float64:
        from seqlab.kernels.delta_rule.reference import delta_rule_chunked

        if qk_l2norm:
            q, k = _l2norm(q), _l2norm(k)
        return delta_rule_chunked(q, k, v, beta * 2 if allow_neg_eigval else beta, g, scale, h0, True)
    from seqlab.kernels.delta_rule import delta_rule as _op

    h0 = None if h0 is None else h0.float().contiguous()
    return _op(q.contiguous(), k.contiguous(), v.contiguous(), beta.contiguous(),
               None if g is None else g.contiguous(), scale, qk_l2norm=qk_l2norm,
               allow_neg_eigval=allow_neg_eigval, initial_state=h0, output_final_state=True)


def prefix_attention(s: torch.Tensor, v: torch.Tensor, h0: tuple | None) -> tuple[torch.Tensor, tuple]:
    """Prefix softmax attention with one query per head: s ``[B, T, H]``, v ``[B, T, H, V]``; state (m, u, w)."""
    if v.dtype == torch.float64:
        from seqlab.kernels.prefix_attention.reference import prefix_attention_chunked

        return prefix_attention_chunked(s, v, h0, True)
    from seqlab.kernels.prefix_attention import prefix_attention as _op

    h0 = None if h0 is None else tuple(z.float().contiguous() for z in h0)
    return _op(s.contiguous(), v.contiguous(), initial_state=h0, output_final_state=True)
