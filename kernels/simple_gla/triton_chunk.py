"""Triton chunk kernels for simple GLA (scalar log-decay per head and step), forward and backward.

Algorithm (fla ``fla/ops/simple_gla/chunk.py`` and ``fla/ops/common/chunk_h.py``; Yang et al., ICML 2024,
Sec. 4), chunk length ``BT = 64``, ``G`` = cumulative ``g`` inside each chunk (log space, float32):

forward
    1. ``_cumsum_kernel``: ``G`` per chunk.
    2. ``_fwd_h_kernel``: walk the chunks of one (sequence, head, K-block, V-block), store the state entering
       every chunk ``h_i`` and update ``h_{i+1} = e^{G_last} h_i + (k e^{G_last - G})^T v`` (tensor-core dot).
    3. ``_fwd_o_kernel``: per chunk ``o = scale [(q e^G) h_i + ((q k^T) e^{G_i - G_j} [i >= j]) v]``.
backward (the states are recomputed by kernel 2 instead of kept from the forward: less memory)
    4. ``_bwd_dh_kernel``: reverse walk, ``dh_i = e^{G_last} dh_{i+1} + scale (q e^G)^T do``; stores the
       gradient of the state leaving each chunk and ``d h0``.
    5. ``_bwd_dv_kernel``: ``dv = (k e^{G_last - G}) dh_{i+1} + A^T do``.
    6. ``_bwd_dqk_kernel``: ``dq = scale e^G do h_i^T + dS k``, ``dk = e^{G_last - G} v dh_{i+1}^T + dS^T q``
       with ``dS = scale (do v^T) e^{G_i - G_j} [i >= j]``, and ``dg`` (step 7) in the same program.
    7. ``dg`` chunk-locally (fla ``chunk_bwd_kernel_dqkwg`` + ``chunk_local_cumsum(reverse=True)``): inside a
       chunk the loss depends on the local cumulative decay ``G`` through ``q e^G``, ``e^{G_i - G_j}``,
       ``k e^{G_last - G}`` and the carry ``e^{G_last} h_i``, so ``dL/dG_t = q_t·dq_t - k_t·dk_t`` plus, at the
       chunk's last step, ``dL/dG_last = e^{G_last} <h_i, dh_{i+1}> + sum_t k_t·dk_t^inter``;
       ``dg_t = sum_{s >= t in the chunk} dL/dG_s`` (a 64 x 64 masked sum in registers). All fp32. A global
       reverse cumsum of ``q·dq - k·dk`` over T would be the same in exact arithmetic, but its terms are O(|dg|)
       and cancel, so bf16 rounding errors random-walk over T (about 1e-2 relative at T = 4096 in bf16,
       vs 1.6e-3 for the chunk-local sum: emulated in PyTorch with the kernel's bf16 operand rounding).

Layouts: q, k ``[B, T, HK, K]``, v ``[B, T, H, V]``, g ``[B, T, H]``, states ``[N, H, K, V]`` float32.
Grouped q/k heads (GQA, Mamba-2 ``ngroups``; fla indexes shared keys the same way, ``i_h // (H // Hg)`` in
``fla/ops/common/chunk_delta_h.py`` and ``chunk_o.py``): ``HK`` divides ``H`` and value head ``h`` reads q/k head
``h // (H // HK)`` in place (``HK`` is a constexpr, so ``HK == H`` compiles to the ungrouped kernels).
``_bwd_dqk_kernel`` writes per-value-head ``dq, dk`` partials ``[B, T, H, K]`` (in q's dtype when ``G = H // HK > 1``)
and the host sums each group of ``G`` heads.
Varlen: ``chunk_indices[i] = (sequence, chunk in sequence)`` and ``chunk_offsets[n]`` come from the host.
Right-to-left scans flip the time axis around the kernels (``reverse`` in :func:`chunk_simple_gla_fwd`).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, interpret_mode, next_pow2

BT = 64


def _cfg(**kw) -> list[triton.Config]:
    if interpret_mode():
        return [triton.Config({k: v[0] for k, v in kw.items()}, num_warps=4)]
    import itertools

    keys = list(kw)
    return [
        triton.Config(dict(zip(keys, vals)), num_warps=w, num_stages=s)
        for vals in itertools.product(*kw.values())
        for w in (4,)
        for s in (2, 3)
    ]


@triton.jit
def _seq_bounds(i_tg, i_b, cu_ptr, cidx_ptr, T, IS_VARLEN: tl.constexpr, BT: tl.constexpr):
    """(bos, seq_len, sequence index, chunk index within the sequence) of global chunk ``i_tg``."""
    if IS_VARLEN:
        i_n = tl.load(cidx_ptr + i_tg * 2).to(tl.int64)
        i_t = tl.load(cidx_ptr + i_tg * 2 + 1).to(tl.int32)
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        L = (tl.load(cu_ptr + i_n + 1).to(tl.int64) - bos).to(tl.int32)
    else:
        i_n = tl.cast(i_b, tl.int64)
        i_t = tl.cast(i_tg, tl.int32)
        bos = i_n * T
        L = tl.cast(T, tl.int32)
    return bos, L, i_n, i_t


@triton.jit
def _cumsum_kernel(g_ptr, gc_ptr, cu_ptr, cidx_ptr, T, H: tl.constexpr, IS_VARLEN: tl.constexpr,
                   BT: tl.constexpr):
    i_tg, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    bos, L, i_n, i_t = _seq_bounds(i_tg, i_b, cu_ptr, cidx_ptr, T, IS_VARLEN, BT)
    o_t = i_t * BT + tl.arange(0, BT)
    m = o_t < L
    b_g = tl.load(g_ptr + (bos + o_t) * H + i_h, mask=m, other=0.0).to(tl.float32)
    tl.store(gc_ptr + (bos + o_t) * H + i_h, tl.cumsum(b_g, axis=0), mask=m)


@triton.autotune(configs=_cfg(BK=[64], BV=[64, 128]), key=["H", "HK", "K", "V", "IS_VARLEN", "PREC"])
@triton.jit
def _fwd_h_kernel(
    k_ptr, v_ptr, gc_ptr, h_ptr, h0_ptr, ht_ptr, cu_ptr, coff_ptr, T,
    H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr,
    STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr, PREC: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr,
):
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        L = (tl.load(cu_ptr + i_n + 1).to(tl.int64) - bos).to(tl.int32)
        boh = tl.load(coff_ptr + i_n).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        L = tl.cast(T, tl.int32)
        boh = tl.cast(i_n, tl.int64) * tl.cdiv(T, BT)
    NT = tl.cdiv(L, BT)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        p_h0 = tl.make_block_ptr(h0_ptr + i_nh * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        b_h += tl.load(p_h0, boundary_check=(0, 1)).to(tl.float32)
    for i in range(0, NT):
        i_t = tl.cast(i, tl.int32)
        p_h = tl.make_block_ptr(h_ptr + ((boh + i_t) * H + i_h) * K * V, (K, V), (V, 1),
                                (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        tl.store(p_h, b_h.to(p_h.dtype.element_ty), boundary_check=(0, 1))
        p_k = tl.make_block_ptr(k_ptr + (bos * HK + i_hk) * K, (K, L), (1, HK * K),
                                (i_k * BK, i_t * BT), (BK, BT), (0, 1))
        p_v = tl.make_block_ptr(v_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
        b_k = tl.load(p_k, boundary_check=(0, 1))
        b_v = tl.load(p_v, boundary_check=(0, 1))
        o_t = i_t * BT + tl.arange(0, BT)
        last = tl.minimum(i_t * BT + BT, L) - 1
        g_last = tl.load(gc_ptr + (bos + last) * H + i_h)
        b_g = tl.load(gc_ptr + (bos + o_t) * H + i_h, mask=o_t < L, other=0.0)
        b_h *= tl.exp(g_last)
        b_kd = (b_k * tl.exp(g_last - b_g)[None, :]).to(b_v.dtype)
        b_h += tl.dot(b_kd, b_v, input_precision=PREC)
    if STORE_FINAL:
        p_ht = tl.make_block_ptr(ht_ptr + i_nh * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        tl.store(p_ht, b_h, boundary_check=(0, 1))


@triton.autotune(configs=_cfg(BK=[64, 128], BV=[64, 128]), key=["H", "HK", "K", "V", "IS_VARLEN", "PREC"])
@triton.jit
def _fwd_o_kernel(
    q_ptr, k_ptr, v_ptr, gc_ptr, h_ptr, o_ptr, cu_ptr, cidx_ptr, scale, T,
    H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, IS_VARLEN: tl.constexpr, PREC: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    i_v, i_tg, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    bos, L, i_n, i_t = _seq_bounds(i_tg, i_b, cu_ptr, cidx_ptr, T, IS_VARLEN, BT)
    i_hc = tl.cast(i_tg, tl.int64) if IS_VARLEN else i_n * tl.cdiv(T, BT) + i_t  # global chunk of the states
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_A = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        p_q = tl.make_block_ptr(q_ptr + (bos * HK + i_hk) * K, (L, K), (HK * K, 1),
                                (i_t * BT, i_k * BK), (BT, BK), (1, 0))
        p_k = tl.make_block_ptr(k_ptr + (bos * HK + i_hk) * K, (K, L), (1, HK * K),
                                (i_k * BK, i_t * BT), (BK, BT), (0, 1))
        p_h = tl.make_block_ptr(h_ptr + (i_hc * H + i_h) * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        b_q = tl.load(p_q, boundary_check=(0, 1))
        b_k = tl.load(p_k, boundary_check=(0, 1))
        b_h = tl.load(p_h, boundary_check=(0, 1))
        b_o += tl.dot(b_q, b_h, input_precision=PREC)
        b_A += tl.dot(b_q, b_k, input_precision=PREC)
    o_t = i_t * BT + tl.arange(0, BT)
    b_g = tl.load(gc_ptr + (bos + o_t) * H + i_h, mask=o_t < L, other=0.0)
    b_o = b_o * tl.exp(b_g)[:, None]
    causal = o_t[:, None] >= o_t[None, :]
    b_A = b_A * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], float("-inf")))
    p_v = tl.make_block_ptr(v_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
    b_v = tl.load(p_v, boundary_check=(0, 1))
    b_o = (b_o + tl.dot(b_A.to(b_v.dtype), b_v, input_precision=PREC)) * scale
    p_o = tl.make_block_ptr(o_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
    tl.store(p_o, b_o.to(p_o.dtype.element_ty), boundary_check=(0, 1))


@triton.autotune(configs=_cfg(BK=[64], BV=[64, 128]), key=["H", "HK", "K", "V", "IS_VARLEN", "PREC"])
@triton.jit
def _bwd_dh_kernel(
    q_ptr, do_ptr, gc_ptr, dh_ptr, dht_ptr, dh0_ptr, cu_ptr, coff_ptr, scale, T,
    H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr,
    IS_VARLEN: tl.constexpr, PREC: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    i_k, i_v, i_nh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_n, i_h = i_nh // H, i_nh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        L = (tl.load(cu_ptr + i_n + 1).to(tl.int64) - bos).to(tl.int32)
        boh = tl.load(coff_ptr + i_n).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        L = tl.cast(T, tl.int32)
        boh = tl.cast(i_n, tl.int64) * tl.cdiv(T, BT)
    NT = tl.cdiv(L, BT)
    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        p_dht = tl.make_block_ptr(dht_ptr + i_nh * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        b_dh += tl.load(p_dht, boundary_check=(0, 1)).to(tl.float32)
    for j in range(0, NT):
        i_t = NT - 1 - tl.cast(j, tl.int32)
        p_dh = tl.make_block_ptr(dh_ptr + ((boh + i_t) * H + i_h) * K * V, (K, V), (V, 1),
                                 (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        tl.store(p_dh, b_dh.to(p_dh.dtype.element_ty), boundary_check=(0, 1))
        p_q = tl.make_block_ptr(q_ptr + (bos * HK + i_hk) * K, (K, L), (1, HK * K),
                                (i_k * BK, i_t * BT), (BK, BT), (0, 1))
        p_do = tl.make_block_ptr(do_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
        b_q = tl.load(p_q, boundary_check=(0, 1))
        b_do = tl.load(p_do, boundary_check=(0, 1))
        o_t = i_t * BT + tl.arange(0, BT)
        last = tl.minimum(i_t * BT + BT, L) - 1
        g_last = tl.load(gc_ptr + (bos + last) * H + i_h)
        b_g = tl.load(gc_ptr + (bos + o_t) * H + i_h, mask=o_t < L, other=0.0)
        b_qd = (b_q * (tl.exp(b_g) * scale)[None, :]).to(b_do.dtype)
        b_dh = b_dh * tl.exp(g_last) + tl.dot(b_qd, b_do, input_precision=PREC)
    if STORE_DH0:
        p_dh0 = tl.make_block_ptr(dh0_ptr + i_nh * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        tl.store(p_dh0, b_dh, boundary_check=(0, 1))


@triton.autotune(configs=_cfg(BK=[64, 128], BV=[64, 128]), key=["H", "HK", "K", "V", "IS_VARLEN", "PREC"])
@triton.jit
def _bwd_dv_kernel(
    q_ptr, k_ptr, gc_ptr, do_ptr, dh_ptr, dv_ptr, cu_ptr, cidx_ptr, scale, T,
    H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, IS_VARLEN: tl.constexpr, PREC: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    i_v, i_tg, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    bos, L, i_n, i_t = _seq_bounds(i_tg, i_b, cu_ptr, cidx_ptr, T, IS_VARLEN, BT)
    i_hc = tl.cast(i_tg, tl.int64) if IS_VARLEN else i_n * tl.cdiv(T, BT) + i_t
    b_A = tl.zeros([BT, BT], dtype=tl.float32)  # [j, i] = k_j . q_i
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(0, tl.cdiv(K, BK)):
        p_k = tl.make_block_ptr(k_ptr + (bos * HK + i_hk) * K, (L, K), (HK * K, 1),
                                (i_t * BT, i_k * BK), (BT, BK), (1, 0))
        p_q = tl.make_block_ptr(q_ptr + (bos * HK + i_hk) * K, (K, L), (1, HK * K),
                                (i_k * BK, i_t * BT), (BK, BT), (0, 1))
        p_dh = tl.make_block_ptr(dh_ptr + (i_hc * H + i_h) * K * V, (K, V), (V, 1), (i_k * BK, i_v * BV), (BK, BV), (1, 0))
        b_k = tl.load(p_k, boundary_check=(0, 1))
        b_q = tl.load(p_q, boundary_check=(0, 1))
        b_dh = tl.load(p_dh, boundary_check=(0, 1))
        b_A += tl.dot(b_k, b_q, input_precision=PREC)
        b_dv += tl.dot(b_k, b_dh, input_precision=PREC)
    o_t = i_t * BT + tl.arange(0, BT)
    last = tl.minimum(i_t * BT + BT, L) - 1
    g_last = tl.load(gc_ptr + (bos + last) * H + i_h)
    b_g = tl.load(gc_ptr + (bos + o_t) * H + i_h, mask=o_t < L, other=0.0)
    b_dv = b_dv * tl.exp(g_last - b_g)[:, None]
    causal_t = o_t[:, None] <= o_t[None, :]
    b_A = b_A * tl.exp(tl.where(causal_t, b_g[None, :] - b_g[:, None], float("-inf"))) * scale
    p_do = tl.make_block_ptr(do_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
    b_do = tl.load(p_do, boundary_check=(0, 1))
    b_dv += tl.dot(b_A.to(b_do.dtype), b_do, input_precision=PREC)
    p_dv = tl.make_block_ptr(dv_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
    tl.store(p_dv, b_dv.to(p_dv.dtype.element_ty), boundary_check=(0, 1))


@triton.autotune(configs=_cfg(BK=[64, 128], BV=[64, 128]), key=["H", "HK", "K", "V", "IS_VARLEN", "PREC"])
@triton.jit
def _bwd_dqk_kernel(
    q_ptr, k_ptr, v_ptr, gc_ptr, h_ptr, do_ptr, dh_ptr, dq_ptr, dk_ptr, dgp_ptr, cu_ptr, cidx_ptr, scale, T,
    TOTAL, H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, IS_VARLEN: tl.constexpr,
    PREC: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    i_k, i_tg, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    bos, L, i_n, i_t = _seq_bounds(i_tg, i_b, cu_ptr, cidx_ptr, T, IS_VARLEN, BT)
    i_hc = tl.cast(i_tg, tl.int64) if IS_VARLEN else i_n * tl.cdiv(T, BT) + i_t
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    b_ds = tl.zeros([BT, BT], dtype=tl.float32)
    b_hdh = tl.zeros([1], dtype=tl.float32)  # <h_i, dh_{i+1}> over this K block
    for i_v in range(0, tl.cdiv(V, BV)):
        p_v = tl.make_block_ptr(v_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
        p_vt = tl.make_block_ptr(v_ptr + (bos * H + i_h) * V, (V, L), (1, H * V), (i_v * BV, i_t * BT), (BV, BT), (0, 1))
        p_do = tl.make_block_ptr(do_ptr + (bos * H + i_h) * V, (L, V), (H * V, 1), (i_t * BT, i_v * BV), (BT, BV), (1, 0))
        p_ht = tl.make_block_ptr(h_ptr + (i_hc * H + i_h) * K * V, (V, K), (1, V), (i_v * BV, i_k * BK), (BV, BK), (0, 1))
        p_dht = tl.make_block_ptr(dh_ptr + (i_hc * H + i_h) * K * V, (V, K), (1, V), (i_v * BV, i_k * BK), (BV, BK), (0, 1))
        b_v = tl.load(p_v, boundary_check=(0, 1))
        b_vt = tl.load(p_vt, boundary_check=(0, 1))
        b_do = tl.load(p_do, boundary_check=(0, 1))
        b_ht = tl.load(p_ht, boundary_check=(0, 1))
        b_dht = tl.load(p_dht, boundary_check=(0, 1))
        b_ds += tl.dot(b_do, b_vt, input_precision=PREC)
        b_dq += tl.dot(b_do, b_ht, input_precision=PREC)
        b_dk += tl.dot(b_v, b_dht, input_precision=PREC)
        b_hdh += tl.sum(b_ht.to(tl.float32) * b_dht.to(tl.float32))
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < L
    last = tl.minimum(i_t * BT + BT, L) - 1
    g_last = tl.load(gc_ptr + (bos + last) * H + i_h)
    b_g = tl.load(gc_ptr + (bos + o_t) * H + i_h, mask=m_t, other=0.0)
    b_dq = b_dq * (tl.exp(b_g) * scale)[:, None]
    b_dk = b_dk * tl.exp(g_last - b_g)[:, None]
    causal = o_t[:, None] >= o_t[None, :]
    b_ds = b_ds * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], float("-inf"))) * scale
    p_q = tl.make_block_ptr(q_ptr + (bos * HK + i_hk) * K, (L, K), (HK * K, 1), (i_t * BT, i_k * BK), (BT, BK), (1, 0))
    p_k = tl.make_block_ptr(k_ptr + (bos * HK + i_hk) * K, (L, K), (HK * K, 1), (i_t * BT, i_k * BK), (BT, BK), (1, 0))
    b_q = tl.load(p_q, boundary_check=(0, 1))
    b_k = tl.load(p_k, boundary_check=(0, 1))
    # gradient of the chunk's total log decay G_last (state carry e^{G_last} h_i and the inter-chunk key decay)
    b_dg_last = b_hdh * tl.exp(g_last) + tl.sum(b_dk * b_k.to(tl.float32))
    b_dq += tl.dot(b_ds.to(b_k.dtype), b_k, input_precision=PREC)
    b_dk += tl.dot(tl.trans(b_ds).to(b_q.dtype), b_q, input_precision=PREC)
    p_dq = tl.make_block_ptr(dq_ptr + (bos * H + i_h) * K, (L, K), (H * K, 1), (i_t * BT, i_k * BK), (BT, BK), (1, 0))
    p_dk = tl.make_block_ptr(dk_ptr + (bos * H + i_h) * K, (L, K), (H * K, 1), (i_t * BT, i_k * BK), (BT, BK), (1, 0))
    tl.store(p_dq, b_dq.to(p_dq.dtype.element_ty), boundary_check=(0, 1))
    tl.store(p_dk, b_dk.to(p_dk.dtype.element_ty), boundary_check=(0, 1))
    # dL/dG_t (G: chunk-local cumulative decay) = q_t.dq_t - k_t.dk_t, plus dL/dG_last at the chunk's last step;
    # dg_t = sum over s >= t inside this chunk (fla chunk_bwd_kernel_dqkwg + chunk_local_cumsum(reverse=True))
    b_dG = tl.sum(b_dq * b_q.to(tl.float32) - b_dk * b_k.to(tl.float32), axis=1)
    b_dG = tl.where(o_t == last, b_dG + b_dg_last, b_dG)
    b_dg = tl.sum(tl.where(o_t[:, None] <= o_t[None, :], b_dG[None, :], 0.0), axis=1)
    tl.store(dgp_ptr + i_k * TOTAL * H + (bos + o_t) * H + i_h, b_dg, mask=m_t)


@triton.jit
def _fused_recurrent_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, o_ptr, h0_ptr, ht_ptr, cu_ptr, scale, T,
    H: tl.constexpr, HK: tl.constexpr, K: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr,
    STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr, REVERSE: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    i_hk = i_h // (H // HK)  # q/k head of value head i_h (GQA)
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        L = tl.load(cu_ptr + i_n + 1).to(tl.int64) - bos
    else:
        bos = tl.cast(i_n, tl.int64) * T
        L = tl.cast(T, tl.int64)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_h = m_k[:, None] & m_v[None, :]
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_h += tl.load(h0_ptr + i_nh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_h, other=0.0)
    for i in range(0, L):
        if REVERSE:
            t = bos + L - 1 - tl.cast(i, tl.int64)
        else:
            t = bos + tl.cast(i, tl.int64)
        b_q = tl.load(q_ptr + (t * HK + i_hk) * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_k = tl.load(k_ptr + (t * HK + i_hk) * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_v = tl.load(v_ptr + (t * H + i_h) * V + o_v, mask=m_v, other=0.0).to(tl.float32)
        b_g = tl.load(g_ptr + t * H + i_h).to(tl.float32)
        b_h = b_h * tl.exp(b_g) + b_k[:, None] * b_v[None, :]
        b_o = tl.sum(b_h * b_q[:, None], axis=0) * scale
        tl.store(o_ptr + (t * H + i_h) * V + o_v, b_o.to(o_ptr.dtype.element_ty), mask=m_v)
    if STORE_FINAL:
        tl.store(ht_ptr + i_nh * K * V + o_k[:, None] * V + o_v[None, :], b_h, mask=m_h)


# ---------------------------------------------------------------------------------------------- host side

class _Layout:
    """Chunk bookkeeping for one call: sequence count, chunk count, varlen index tensors."""

    def __init__(self, B: int, T: int, cu_seqlens: torch.Tensor | None, offsets: list[int] | None) -> None:
        self.cu = cu_seqlens
        if cu_seqlens is None:
            self.N, self.NT = B, B * cdiv(T, BT)
            self.cidx = self.coff = None
        else:
            lens = [e - s for s, e in zip(offsets[:-1], offsets[1:])]
            nts = [cdiv(n, BT) for n in lens]
            pairs = [(i, j) for i, n in enumerate(nts) for j in range(n)]
            dev = cu_seqlens.device
            self.N, self.NT = len(lens), len(pairs)
            self.cidx = torch.tensor(pairs, dtype=torch.int32, device=dev).reshape(-1, 2).contiguous()
            coff = [0]
            for n in nts[:-1]:
                coff.append(coff[-1] + n)
            self.coff = torch.tensor(coff, dtype=torch.int32, device=dev)
            self.offsets = offsets


def _prec(x: torch.Tensor) -> str:
    return "ieee" if x.dtype == torch.float32 else "tf32"


def _cumsum(g: torch.Tensor, lay: _Layout) -> torch.Tensor:
    B, T, H = g.shape
    gc = torch.empty(B, T, H, dtype=torch.float32, device=g.device)
    grid = (lay.NT if lay.cu is not None else cdiv(T, BT), B * H if lay.cu is None else H)
    _cumsum_kernel[grid](g, gc, lay.cu, lay.cidx, T, H=H, IS_VARLEN=lay.cu is not None, BT=BT)
    return gc


def _fwd_h(k, v, gc, h0, lay: _Layout, store_final: bool):
    B, T, HK, K = k.shape
    H, V = v.shape[2:]
    h = k.new_empty(lay.NT, H, K, V)
    ht = k.new_empty(lay.N, H, K, V, dtype=torch.float32) if store_final else None
    grid = lambda m: (cdiv(K, m["BK"]), cdiv(V, m["BV"]), lay.N * H)  # noqa: E731
    _fwd_h_kernel[grid](k, v, gc, h, h0, ht, lay.cu, lay.coff, T, H=H, HK=HK, K=K, V=V, HAS_H0=h0 is not None,
                        STORE_FINAL=store_final, IS_VARLEN=lay.cu is not None, PREC=_prec(k), BT=BT)
    return h, ht


def _grid_chunks(lay: _Layout, B: int, T: int, H: int):
    return (lay.NT, H) if lay.cu is not None else (cdiv(T, BT), B * H)


def _flip_cu(cu: torch.Tensor | None, T: int) -> torch.Tensor | None:
    return None if cu is None else (T - cu.flip(0)).to(cu.dtype).contiguous()


def chunk_simple_gla_fwd(q, k, v, g, scale, h0, cu_seqlens, offsets, reverse, output_final_state):
    """Forward of the chunk form; returns ``(o, final_state or None)``. Inputs validated by the caller."""
    if reverse:
        q, k, v, g = (x.flip(1) for x in (q, k, v, g))
        if cu_seqlens is not None:
            T = q.shape[1]
            cu_seqlens, offsets = _flip_cu(cu_seqlens, T), [T - o for o in offsets[::-1]]
            h0 = None if h0 is None else h0.flip(0).contiguous()
        o, ht = chunk_simple_gla_fwd(q, k, v, g, scale, h0, cu_seqlens, offsets, False, output_final_state)
        if cu_seqlens is not None and ht is not None:
            ht = ht.flip(0).contiguous()
        return o.flip(1), ht
    B, T, HK, K = q.shape
    H, V = v.shape[2:]
    lay = _Layout(B, T, cu_seqlens, offsets)
    gc = _cumsum(g, lay)
    h, ht = _fwd_h(k, v, gc, h0, lay, output_final_state)
    o = torch.empty_like(v)
    g0, g1 = _grid_chunks(lay, B, T, H)
    grid = lambda m: (cdiv(V, m["BV"]), g0, g1)  # noqa: E731
    _fwd_o_kernel[grid](q, k, v, gc, h, o, lay.cu, lay.cidx, scale, T, H=H, HK=HK, K=K, V=V,
                        IS_VARLEN=lay.cu is not None, PREC=_prec(q), BT=BT)
    return o, ht


def chunk_simple_gla_bwd(q, k, v, g, scale, h0, cu_seqlens, offsets, reverse, do, dht):
    """Backward of the chunk form: ``(dq, dk, dv, dg, dh0 or None)``; ``dht`` is the final state's gradient or None."""
    if reverse:
        T = q.shape[1]
        q, k, v, g, do = (x.flip(1) for x in (q, k, v, g, do))
        if cu_seqlens is not None:
            cu_seqlens, offsets = _flip_cu(cu_seqlens, T), [T - o for o in offsets[::-1]]
            h0, dht = (None if x is None else x.flip(0).contiguous() for x in (h0, dht))
        dq, dk, dv, dg, dh0 = chunk_simple_gla_bwd(q, k, v, g, scale, h0, cu_seqlens, offsets, False, do, dht)
        if cu_seqlens is not None and dh0 is not None:
            dh0 = dh0.flip(0).contiguous()
        return dq.flip(1), dk.flip(1), dv.flip(1), dg.flip(1), dh0
    B, T, HK, K = q.shape
    H, V = v.shape[2:]
    G = H // HK
    lay = _Layout(B, T, cu_seqlens, offsets)
    varlen = lay.cu is not None
    gc = _cumsum(g, lay)
    h, _ = _fwd_h(k, v, gc, h0, lay, False)
    dh = q.new_empty(lay.NT, H, K, V)
    dh0 = torch.empty(lay.N, H, K, V, dtype=torch.float32, device=q.device) if h0 is not None else None
    grid = lambda m: (cdiv(K, m["BK"]), cdiv(V, m["BV"]), lay.N * H)  # noqa: E731
    _bwd_dh_kernel[grid](q, do, gc, dh, dht, dh0, lay.cu, lay.coff, scale, T, H=H, HK=HK, K=K, V=V,
                         HAS_DHT=dht is not None, STORE_DH0=h0 is not None, IS_VARLEN=varlen, PREC=_prec(q), BT=BT)
    g0, g1 = _grid_chunks(lay, B, T, H)
    dv = torch.empty_like(v)
    _bwd_dv_kernel[lambda m: (cdiv(V, m["BV"]), g0, g1)](
        q, k, gc, do, dh, dv, lay.cu, lay.cidx, scale, T, H=H, HK=HK, K=K, V=V, IS_VARLEN=varlen, PREC=_prec(q),
        BT=BT)
    if G == 1:
        dq, dk = torch.empty_like(q), torch.empty_like(k)
    else:  # GQA: per-value-head partials [B, T, H, K] in q's dtype, summed over each group of G heads below (the
        # traffic and rounding of the repeat_interleave path's backward, without its forward copies)
        dq, dk = q.new_empty(B, T, H, K), k.new_empty(B, T, H, K)
    # one dg partial per K block; the autotuner benchmarks every BK on this buffer, so only the slices of the
    # chosen BK are valid afterwards (a stale slice from a BK = 64 trial once made bf16 dg wrong on GPU)
    dgp = torch.empty(cdiv(K, 64), B, T, H, dtype=torch.float32, device=q.device)
    _bwd_dqk_kernel[lambda m: (cdiv(K, m["BK"]), g0, g1)](
        q, k, v, gc, h, do, dh, dq, dk, dgp, lay.cu, lay.cidx, scale, T, B * T, H=H, HK=HK, K=K, V=V,
        IS_VARLEN=varlen, PREC=_prec(q), BT=BT)
    nk = cdiv(K, _bwd_dqk_kernel.best_config.kwargs["BK"])
    dg = dgp[0] if nk == 1 else dgp[:nk].sum(0)
    if G > 1:  # value head h used q/k head h // G
        dq = dq.view(B, T, HK, G, K).sum(3).to(q.dtype)
        dk = dk.view(B, T, HK, G, K).sum(3).to(k.dtype)
    return dq, dk, dv, dg.to(g.dtype), dh0


def fused_recurrent_simple_gla_fwd(q, k, v, g, scale, h0, cu_seqlens, reverse, output_final_state):
    """Token-by-token forward (decoding): one program per (sequence, head, V-block) holds a ``[K, BV]`` state."""
    B, T, HK, K = q.shape
    H, V = v.shape[2:]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BK = max(16, next_pow2(K))
    BV = min(max(16, next_pow2(V)), 32 if BK <= 128 else 16)
    o = torch.empty_like(v)
    ht = q.new_empty(N, H, K, V, dtype=torch.float32) if output_final_state else None
    _fused_recurrent_kernel[(cdiv(V, BV), N * H)](
        q, k, v, g, o, h0, ht, cu_seqlens, scale, T, H=H, HK=HK, K=K, V=V, HAS_H0=h0 is not None,
        STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None, REVERSE=reverse, BK=BK, BV=BV)
    return o, ht
