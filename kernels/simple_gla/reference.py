"""PyTorch forms of scalar-gated linear attention (simple GLA).

Recurrence per head (state ``S`` is ``[K, V]``, ``g_t`` a scalar log-decay)::

    S_t = exp(g_t) S_{t-1} + k_t v_t^T,        o_t = scale * S_t^T q_t

g = 0 is causal linear attention, a constant g per head RetNet, a data-dependent g Mamba-2 / SSD.

* :func:`simple_gla_naive` is the oracle: one step per token.
* :func:`simple_gla_chunked` is the CPU path, the chunk algorithm of fla ``fla/ops/simple_gla/chunk.py``
  (Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient Training", ICML 2024, Sec. 3-4):
  with ``G`` the within-chunk cumulative sum of ``g``, every chunk computes
  ``o = scale * [(q e^G) S_in + ((q k^T) * e^(G_i - G_j) * [i >= j]) v]`` and passes
  ``S_out = e^(G_last) S_in + (k e^(G_last - G))^T v`` to the next chunk. The intra-chunk decay is factored
  around the chunk's log-decay midpoint where that keeps both factors within ``e^(+-50)`` (float32), else
  computed pairwise; chunk-to-chunk factors are formed in log space with exponents <= 0, so nothing overflows.

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


# Largest |G_t - R| (log decay of a step relative to its chunk's reference point R) for which the intra-chunk
# decay exp(G_i - G_j) is factored as exp(G_i - R) * exp(R - G_j): both factors then stay in [e^-L, e^L], far
# from float32 overflow (e^88.7) and from subnormals (e^-87.3). Beyond it (with g <= 0: a chunk whose total log
# decay exceeds 2L) the whole call takes the pairwise masked exp, which is safe for any g <= 0.
_FACTOR_LIMIT = {torch.float32: 50.0, torch.float64: 300.0}
# Steps (rows of q) per block of the loop in simple_gla_chunked, whole sequences per block. At B4 T2048 H4 K=V=64
# on the 2-core CPU (2026-12-03, fifth session; interleaved A/B, median of 60 calls each): 4096 rows 13.8 ms,
# 2048 rows 13.9 ms, 8192 rows (= one block per head here) 15.3 ms. Measured on the CPU only; the same value is
# used on every device (on a GPU this form runs only as the float64 oracle of benchmarks/kernels.py or with an
# explicit backend="torch"; not timed there).
_BLOCK_ROWS = 4096


def simple_gla_chunked(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, scale: float,
    h0: torch.Tensor | None = None, reverse: bool = False, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked form (same contract as :func:`simple_gla_naive`), run block by block over (head, batch rows).

    With ``G`` the within-chunk cumulative sum of ``g`` and ``R`` a per-chunk reference log decay, each chunk
    computes ``o = scale * [(q e^(G-R)) (e^R S_in) + ((q k^T) * e^(G_i - G_j) * [i >= j]) v]``; the chunk's own
    state is ``e^(G_last - R') (k e^(R' - G))^T v``. The entry states of all chunks of a sequence (and its final
    state) come from one ``[n + 1, n]`` matmul whose entries ``exp(Gin_i - Gc_j + R_i + G_last,j - R'_j)`` are
    formed in log space (``Gin_i - Gc_j``, 0 for the adjacent chunk, first; then the chunk-local terms), so every
    exponent is <= 0 and the adjacent chunk's factor stays exact in float32.

    * Factored intra-chunk decay (the fast path): ``R = R' = G_last / 2``. Then ``e^(G_i - G_j) = e^(G_i - R)
      e^(R - G_j)``, so ``(q k^T) * decay`` is ``tril((q e^(G-R)) (k e^(R-G))^T)``: no ``[C, C]`` exp, and the
      scaled q and k serve the inter-chunk read and the chunk state too. Taken when ``|G - R| <=``
      ``_FACTOR_LIMIT`` everywhere (chunk decays up to 100 in float32; factors in ``[e^-50, e^50]``). Entries
      above the diagonal may overflow to inf and are discarded by ``tril`` (their gradient is never formed).
    * Otherwise the pairwise form: ``R = 0``, ``R' = G_last`` (both factors ``<= 1``) and the masked
      ``exp(G_i - G_j)``, computed with the upper triangle set to 0 before the exp, so nothing overflows.

    The loop runs over value heads and blocks of whole sequences (about ``_BLOCK_ROWS`` steps), reading q, k, v as
    strided views of ``[B, T, H, *]`` (no transposed copies; grouped q/k heads are indexed, not repeated). With
    autograd off the block temporaries are updated in place and the matmuls write straight into a head-major
    output, returned as a ``[B, T, H, V]`` view (the op makes it contiguous). On the 2-core CPU (B4 T2048 H4
    K=V=64, float32, interleaved A/B) this takes 13-19 ms against 24-44 ms for the former all-chunks-at-once form,
    whose ~70 MB of fresh temporaries per call could cost up to 18,000 page faults a call. ``chunk_size`` 64 is
    the CPU optimum of this form (32: 16.5 ms, 128: 16.8 ms, 64: 12.9 ms in one A/B; docs/results.md).

    Args:
        q, k, v, g, scale, h0, reverse: as in :func:`simple_gla_naive`.
        chunk_size: chunk length C.

    Returns:
        ``(o, final_state)``.
    """
    if reverse:
        o, S = simple_gla_chunked(q.flip(1), k.flip(1), v.flip(1), g.flip(1), scale, h0, False, chunk_size)
        return o.flip(1), S
    acc = _acc(v)
    B, T, HK, K = q.shape
    H, V = v.shape[2:]
    grp = H // HK  # value head h uses q/k head h // grp
    dev = v.device
    if T == 0:
        S = torch.zeros(B, H, K, V, dtype=acc, device=dev) if h0 is None else h0.to(acc)
        return v.new_zeros(B, 0, H, V), S
    C = chunk_size
    n = -(-T // C)
    pad = n * C - T
    q, k, v, g = q.to(acc), k.to(acc), v.to(acc), g.to(acc)
    if pad:  # padded steps (g = 0, k = v = 0) leave the state unchanged
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        g = torch.nn.functional.pad(g, (0, 0, 0, pad))
    h0 = None if h0 is None else h0.to(acc)
    inplace = not (torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (q, k, v, g, h0)))

    # per-chunk log decays, all [H, B, n(, C)]: small next to q, k, v
    G = g.reshape(B, n, C, H).permute(3, 0, 1, 2).cumsum(-1)  # within-chunk cumulative log decay
    GL = G[..., -1]
    factored = bool((G - GL[..., None] / 2).abs().amax() <= _FACTOR_LIMIT[acc])
    R, Rk = (GL / 2, GL / 2) if factored else (torch.zeros_like(GL), GL)
    e = (G - R[..., None]).exp()  # rows of q
    f = (Rk[..., None] - G).exp()  # rows of k
    Gc = GL.cumsum(-1)  # log decay up to the end of chunk j
    Gin = torch.nn.functional.pad(Gc, (1, 0))  # before chunk i; i = n: the whole sequence (final state)
    Rx = torch.nn.functional.pad(R, (0, 1))  # the final state is read unscaled
    before = torch.ones(n + 1, n, dtype=torch.bool, device=dev).tril(-1)
    M = ((Gin[..., :, None] - Gc[..., None, :]) + (Rx[..., :, None] + (GL - Rk)[..., None, :]))
    M = M.masked_fill(~before, float("-inf")).exp()  # [H, B, n + 1, n]
    P = (Gin + Rx).exp()[..., None]  # factors of h0, [H, B, n + 1, 1]
    if not factored:
        low = torch.ones(C, C, dtype=acc, device=dev).tril()
        Gt = G.reshape(H, B * n, C)

    Bb = max(1, min(B, _BLOCK_ROWS // (n * C)))
    # o is built head-major, [H, B, n * C, V], so that each block's matmuls write their rows in place, and is
    # returned as a [B, T, H, V] view (as the former form did); the op makes it contiguous
    o = torch.empty(H, B, n * C, V, dtype=acc, device=dev) if inplace else None
    S = torch.empty(B, H, K, V, dtype=acc, device=dev) if inplace else None
    outs, finals = [], []
    for h in range(H):
        hk = h // grp
        o_h, s_h = [], []
        for b0 in range(0, B, Bb):
            b1 = min(B, b0 + Bb)
            bb, m = b1 - b0, (b1 - b0) * n
            qb = q[b0:b1, :, hk].reshape(m, C, K)  # views: rows H * K apart
            kb = k[b0:b1, :, hk].reshape(m, C, K)
            vb = v[b0:b1, :, h].reshape(m, C, V)
            qe = qb * e[h, b0:b1].reshape(m, C, 1)
            kf = kb * f[h, b0:b1].reshape(m, C, 1)
            if factored:
                A = torch.bmm(qe, kf.transpose(1, 2))
                A = A.tril_() if inplace else A.tril()
            else:
                Gb = Gt[h, b0 * n : b1 * n]
                D = (Gb[:, :, None] - Gb[:, None, :]).mul_(low).exp_()  # exp(0) = 1 above the diagonal
                A = torch.bmm(qb, kb.transpose(1, 2))
                A = A.mul_(D).mul_(low) if inplace else A * D * low
            oi = torch.bmm(A, vb, out=o[h, b0:b1].view(m, C, V)) if inplace else torch.bmm(A, vb)
            kvs = torch.bmm(kf.transpose(1, 2), vb).view(bb, n, K * V)  # every chunk's own state, scaled
            Mb = M[h, b0:b1]
            st = torch.bmm(Mb[:, :n], kvs)  # e^R_i * (state entering chunk i)
            fin = torch.bmm(Mb[:, n:], kvs)  # final state
            if h0 is not None:
                hb = h0[b0:b1, h].reshape(bb, 1, K * V)
                Pb = P[h, b0:b1]
                if inplace:
                    st.baddbmm_(Pb[:, :n], hb)
                    fin.baddbmm_(Pb[:, n:], hb)
                else:
                    st, fin = torch.baddbmm(st, Pb[:, :n], hb), torch.baddbmm(fin, Pb[:, n:], hb)
            st = st.view(m, K, V)
            if inplace:
                oi.baddbmm_(qe, st, beta=scale, alpha=scale)
                S[b0:b1, h] = fin.view(bb, K, V)
            else:
                o_h.append(torch.baddbmm(oi, qe, st, beta=scale, alpha=scale).view(bb, n * C, V))
                s_h.append(fin.view(bb, K, V))
        if not inplace:
            outs.append(torch.cat(o_h, 0))
            finals.append(torch.cat(s_h, 0))
    if not inplace:
        o, S = torch.stack(outs, 0), torch.stack(finals, 1)
    o = o.permute(1, 2, 0, 3)
    return (o[:, :T] if pad else o).to(v.dtype), S


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
