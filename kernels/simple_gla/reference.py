"""PyTorch forms of scalar-gated linear attention (simple GLA).

Recurrence per head (state ``S`` is ``[K, V]``, ``g_t`` a scalar log-decay)::

    S_t = exp(g_t) S_{t-1} + k_t v_t^T,        o_t = scale * S_t^T q_t

g = 0 is causal linear attention, a constant g per head RetNet, a data-dependent g Mamba-2 / SSD.

* :func:`simple_gla_naive` is the oracle: one step per token.
* :func:`simple_gla_chunked` is the CPU path, the chunk algorithm of fla ``fla/ops/simple_gla/chunk.py``
  (Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", ICML 2024, Sec. 3-4):
  with ``G`` the within-chunk cumulative sum of ``g``, every chunk computes
  ``o = scale * [(q e^G) S_in + ((q k^T) * e^(G_i - G_j) * [i >= j]) v]`` and passes
  ``S_out = e^(G_last) S_in + (k e^(G_last - G))^T v`` to the next chunk. Decays stay in log space and every
  exponent is <= 0 (masked entries are set to -inf before ``exp``), so nothing overflows.

Inputs ``[B, T, HK, K]`` / ``[B, T, H, V]`` / ``[B, T, H]``; state ``[B, H, K, V]``. Computation is float32
(float64 stays float64). ``reverse=True`` runs right to left: ``S_t = exp(g_t) S_{t+1} + k_t v_t^T``.
Grouped q/k heads (GQA, Mamba-2 ``ngroups``): ``HK`` divides ``H`` and value head ``h`` uses q/k head
``h // (H // HK)``; ``HK == H`` is the ungrouped case.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def _acc(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def simple_gla_naive(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
    h0: torch.Tensor | None = None, reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token oracle.

    Args:
        q, k: ``[B, T, HK, K]`` with ``HK`` dividing ``H`` (value head ``h`` uses q/k head ``h // (H // HK)``).
        v: ``[B, T, H, V]``.
        g: log-decay ``[B, T, H]``.
        scale: multiplier of ``q``.
        h0: initial state ``[B, H, K, V]`` or None.
        reverse: run right to left.

    Returns:
        ``o`` ``[B, T, H, V]`` in ``v.dtype`` and the final state ``[B, H, K, V]`` in the accumulation dtype.
    """
    acc = _acc(v)
    B, T, HK, K = q.shape
    H, V = v.shape[2:]
    G = H // HK
    # state per (q/k head n, member j of its group): [B, HK, G, K, V], i.e. value head n * G + j
    S = torch.zeros(B, H, K, V, dtype=acc, device=v.device) if h0 is None else h0.to(acc)
    S = S.reshape(B, HK, G, K, V)
    out = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        kv = k[:, t].to(acc)[:, :, None, :, None] * v[:, t].to(acc).reshape(B, HK, G, 1, V)
        S = S * g[:, t].to(acc).exp().reshape(B, HK, G, 1, 1) + kv
        out[t] = scale * torch.einsum("bnk,bngkv->bngv", q[:, t].to(acc), S).reshape(B, H, V)
    o = torch.stack(out, 1) if T else v.new_zeros(B, 0, H, V, dtype=acc)
    return o.to(v.dtype), S.reshape(B, H, K, V)


def simple_gla_chunked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
    h0: torch.Tensor | None = None, reverse: bool = False, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked form (same contract as :func:`simple_gla_naive`); the intra-chunk part runs for all chunks at once.

    Args:
        q, k, v, g, scale, h0, reverse: as in :func:`simple_gla_naive`.
        chunk_size: chunk length C.

    Returns:
        ``(o, final_state)``.
    """
    if reverse:
        o, S = simple_gla_chunked(q.flip(1), k.flip(1), v.flip(1), g.flip(1), scale, h0, False, chunk_size)
        return o.flip(1), S
    if q.shape[2] != v.shape[2]:  # grouped q/k heads: value head h uses q/k head h // G
        G = v.shape[2] // q.shape[2]
        q, k = q.repeat_interleave(G, 2), k.repeat_interleave(G, 2)
    acc = _acc(v)
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    n = -(-T // C)
    pad = n * C - T
    BH = B * H

    # [B*H, n, C, *], contiguous (batched matmuls on strided views are several times slower on CPU); padded
    # steps (g = 0, k = v = 0) leave the state unchanged
    def prep(x: torch.Tensor) -> torch.Tensor:
        x = x.to(acc).transpose(1, 2)
        if pad:
            x = torch.nn.functional.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
        return x.contiguous().view(BH, n, C, *x.shape[3:])

    qc, kc, vc, gc = prep(q * scale), prep(k), prep(v), prep(g)
    G = gc.cumsum(-1)  # [BH, n, C] log decay inside each chunk
    causal = torch.ones(C, C, dtype=torch.bool, device=v.device).tril()
    decay = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    o = (qc @ kc.transpose(-1, -2) * decay) @ vc  # intra-chunk part [BH, n, C, V]
    qg = qc * G.exp()[..., None]
    kv = (kc * (G[..., -1:] - G).exp()[..., None]).transpose(-1, -2) @ vc  # every chunk's own state [BH, n, K, V]
    # The state entering chunk i is sum_{j<i} exp(Gc_{i-1} - Gc_j) kv_j (+ exp(Gc_{i-1}) h0), with Gc the
    # cumulative log decay at chunk ends: one [n, n] matmul (factors <= 1, log space) instead of a loop.
    Gc = G[..., -1].cumsum(-1)  # [BH, n]
    Gin = torch.cat([Gc.new_zeros(BH, 1), Gc[:, :-1]], 1)  # log decay accumulated before chunk i
    before = torch.ones(n, n, dtype=torch.bool, device=v.device).tril(-1)
    M = (Gin[:, :, None] - Gc[:, None, :]).masked_fill(~before, float("-inf")).exp()  # [BH, n(i), n(j)]
    kv = kv.reshape(BH, n, K * V)
    states = M @ kv
    S = ((Gc[:, -1:] - Gc).exp()[..., None] * kv).sum(1)  # final state [BH, K * V]
    if h0 is not None:
        h = h0.to(acc).reshape(BH, 1, K * V)
        states = states + Gin.exp()[..., None] * h
        S = S + Gc[:, -1:].exp() * h[:, 0]
    o = torch.baddbmm(o.view(BH * n, C, V), qg.view(BH * n, C, K), states.view(BH * n, K, V))
    o = o.view(B, H, n * C, V)[:, :, :T].transpose(1, 2)
    return o.to(v.dtype), S.view(B, H, K, V)


def simple_gla_varlen(
    form: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
    h0: torch.Tensor | None, offsets: list[int], reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``form`` on each sequence packed in ``[1, T, ...]`` inputs; returns ``o`` and states ``[N, H, K, V]``."""
    outs, finals = [], []
    for i, (s, e) in enumerate(zip(offsets[:-1], offsets[1:])):
        o, S = form(q[:, s:e], k[:, s:e], v[:, s:e], g[:, s:e], scale, None if h0 is None else h0[i : i + 1], reverse)
        outs.append(o)
        finals.append(S)
    return torch.cat(outs, 1), torch.cat(finals, 0)
