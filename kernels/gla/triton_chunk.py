"""Triton path of gated linear attention with a vector decay (GLA), chunk-parallel.

Decomposition after fla 0.6.0 ``fla/ops/gla/chunk.py`` (``chunk_gla_fwd`` / ``chunk_gla_bwd``) and
``fla/ops/common/chunk_h.py`` (``chunk_fwd_h`` / ``chunk_bwd_dh``); the code here is our own. Chunks of
``BT = 64`` steps (``kernels/gla/chunk_layout.py``: packed sequences as padded chunks ``[NT, BT, H, D]``, a zero
row is the identity, so no kernel needs sequence bounds; dense batches with ``T % 64 == 0`` are a free view and
build no index tensors). ``gc`` = in-chunk cumulative log decay (float32), ``h_c`` = state entering chunk ``c``,
``dh_c`` = gradient of the state leaving chunk ``c``.

Forward (fla: cumsum, states, two intra-score launches, output = 5 launches; 3 here)
    1. ``_gla_fwd_h_kernel`` (one program per sequence, head, key block, value block; sequential over the
       chunks): the chunk-local cumsum of ``g`` is taken in registers and written once (fla runs a separate
       ``chunk_local_cumsum`` pass), stores ``h_c`` in the input dtype (as fla) and the final state.
    2. ``_gla_fwd_ao64_kernel`` (one program per chunk and head, launched twice:
       see below): the intra-chunk scores ``A_ij = scale sum_d q_id k_jd exp(gc_id - gc_jd)`` (j <= i), stored
       ``[B, T, H, 64]`` float32 for the backward (fla saves A too), then ``o = scale (q e^gc) h_c + A v``, all
       64-row matmuls. Where the decay spans at most ``e^60`` over the chunk in every key channel (fla's layer gate,
       logsigmoid / 16, spans about e^3), each key block's scores are one matmul with the decay split at the
       chunk's first row, ``(q_i e^(gc_i - gc_0)) . (k_j e^(gc_0 - gc_j))``, every factor in ``[e^-60, e^60]``.
       Elsewhere, secondary chunking (GLA paper, Sec. 4.2): the decay split at the first step ``r`` of each
       query's 16-row sub-chunk, ``(q_i e^(gc_i - gc_r)) . (k_j e^(gc_r - gc_j))``, both factors <= 1 for keys in
       earlier sub-chunks; the diagonal 16 x 16 blocks (fla: ``chunk_gla_fwd_A_kernel_intra_sub_intra``,
       elementwise) come out of the same matmul while the sub-chunk's span is at most ``e^60``, and otherwise
       elementwise in log space: exact for any decay. The two cases are two compiled variants (``FAST``), each
       launch skipping the other's chunks: one kernel with a runtime branch kept both paths' registers live.
       Until the seventh session of 2026-12-03 one program per 16-row query sub-chunk did this (383 us against
       311 us on an H200, docs/results.md).
Backward (fla: states, dh, dv, dA, intra dq/dk, inter dq/dk/dg + dtype casts = 6 launches and float32
[B, T, H, K] intermediates for dq / dk; 5 here)
    3. ``_gla_bwd_states_kernel``: the forward state pass (float32 states, writes ``gc``) and the reverse pass
       ``dh_{c-1} = e^(gc_last) dh_c + scale (q e^gc)^T do_c`` (from ``d h_T``; its last value is ``d h0``)
       run as the two halves of one launch (they are independent), so the two latency-bound sequential loops
       overlap.
    4. ``_gla_bwd_dv_kernel``: ``dv = A^T do + (k e^(gc_last - gc)) dh_c``; ``A^T do`` in 3xTF32 (fla: fp32
       without tf32, "important ... to maintain a good precision").
    5. ``_gla_bwd_da_kernel`` (one program per chunk and head): ``dA = scale do v^T`` (causal), float32, once
       (fla ``chunk_gla_bwd_kernel_dA``; until the seventh session of 2026-12-03 the dq/dk kernel formed ``dA``
       and ``dA^T`` itself for each of its key blocks).
    6. ``_gla_bwd_dqkg_kernel`` (one program per chunk, head, key block; launched twice like step 2): inter terms
       ``dq = scale e^gc (do h_c^T)``, ``dk = e^(gc_last - gc) (v dh_c^T)``, intra terms from the loaded ``dA``
       (``dA^T`` is the transpose of that loaded tile): one matmul each where the chunk's decay span is at most
       ``e^60`` (decay split at the chunk's first row for dq, its last row for dk), else the sub-chunk split (the
       queries' factor split at the first step of their sub-chunk for dq, at the last step of the key's sub-chunk
       for dk; same exact fallback), and
       ``dg_t = sum_{s >= t in chunk} (q_s dq_s - k_s dk_s) + e^(gc_last) sum_v h_c dh_c + sum_s k_s dk^inter_s``
       (fla ``chunk_gla_bwd_kernel_inter``). dq / dk / dg are written once, in their final dtype.

Hopper / Triton 3.4-3.7 pitfalls avoided: fla issue 640 (wrong gated backward gradients on H20/H100 with Triton >=
3.4, < 3.7.1) was traced in fla PR 826 to ``b_dk += tl.dot(tl.trans(b_ds), b_q)`` where ``b_ds`` is itself the
result of ``tl.dot`` calls (wgmma accumulator layout; its transpose gets a ``#linear`` layout that is then fed to
another matmul). No kernel here transposes a dot result: ``dA^T`` is its own matmul (``v do^T``), ``A^T`` is the
transpose of a tile loaded from memory, and every other ``tl.trans`` is applied to loaded or elementwise tiles.
``scale`` is a float argument (fla PR 1262: a specialised integer ``scale=1`` miscompiled the Hopper dh kernel). The
dq/dk kernel is tuned over 8-warp configs only: with 4 warps it spills (checked offline with Triton 3.6's ptxas for
sm_90a), and (BK = 32, 4 warps) is the configuration of triton issue 11366 (illegal shared-memory read on H20 in a
kernel with the same dot pattern, Triton 3.7.1).

Autotuning: a few configs per kernel (checked for register spills for bf16, K = V = 128, sm_90a), 5 ms / 25 ms
benchmark per config, results cached on disk like fla's (``cache_results``); ``SEQLAB_GLA_AUTOTUNE=0`` takes the
first config of each list. Under ``TRITON_INTERPRET=1`` all dots are exact float32 ("ieee").
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, interpret_mode, next_pow2
from seqlab.kernels.gla.chunk_layout import ChunkLayout

CHUNK = 64
SUB = 16
SPAN = tl.constexpr(60.0)  # largest |log factor| inside a sub-chunk for the matmul form of the diagonal blocks


# ----------------------------------------------------------------------------------------------- autotune ---

def _tune(space, key):
    """``triton.autotune`` over ``space`` = [(meta, num_warps, num_stages[, maxnreg])]. Under ``TRITON_INTERPRET=1`` one
    config with 16-wide blocks (so the tiny test shapes still cross block boundaries); with
    ``SEQLAB_GLA_AUTOTUNE=0`` only the first (default) config."""
    if interpret_mode():
        space = [({name: 16 for name in space[0][0]}, 1, 1)]
    elif os.environ.get("SEQLAB_GLA_AUTOTUNE", "1") == "0":
        space = space[:1]
    configs = [triton.Config(dict(meta), num_warps=w, num_stages=s, maxnreg=mr[0] if mr else None)
               for meta, w, s, *mr in space]

    def bench(fn, quantiles):  # shorter than Triton's default (25 ms warm-up, 100 ms) per config
        from triton.testing import do_bench
        return do_bench(fn, warmup=5, rep=25, quantiles=quantiles)

    def prune(configs, named_args, **kwargs):  # drop blocks wider than the (padded) head dims
        args = {**named_args, **kwargs}
        lim = {b: max(16, next_pow2(args[d])) for b, d in (("BK", "K"), ("BV", "V")) if d in args}
        kept = [c for c in configs if all(c.kwargs.get(n, 0) <= m for n, m in lim.items())]
        return kept or configs[-1:]

    return triton.autotune(configs=configs, key=key, prune_configs_by={"early_config_prune": prune}, do_bench=bench,
                           cache_results=True)


# Spaces checked offline for sm_90a (Triton 3.6, bf16, K = V = 128): only the last dq/dk config spills registers.
_STATE_SPACE = [({"BK": 64, "BV": 64}, 4, 2), ({"BK": 32, "BV": 64}, 4, 2), ({"BK": 64, "BV": 32}, 4, 2),
                ({"BK": 32, "BV": 32}, 2, 2),
                # added 2026-12-03, not yet timed: the H200 run picked (32, 64) for the backward state pass,
                # whose per-(head, block) chunk walk is latency-bound, so smaller tiles / deeper pipelines may win
                ({"BK": 32, "BV": 32}, 4, 2), ({"BK": 32, "BV": 32}, 4, 3), ({"BK": 32, "BV": 64}, 4, 3)]
_DA_BV = 128  # value block of the dA kernel (fixed; 4 warps: 64 registers, no spills, sm_90a ptxas -v)
# the whole-chunk output kernel (added in the seventh session of 2026-12-03)
_AO64_SPACE = [({"BK": 64, "BV": 128}, 8, 2), ({"BK": 64, "BV": 64}, 8, 2), ({"BK": 32, "BV": 128}, 4, 2),
               ({"BK": 32, "BV": 128}, 8, 3), ({"BK": 32, "BV": 128}, 8, 2), ({"BK": 64, "BV": 128}, 8, 3)]
# (sm_90a ptxas -v: 249, 253, 251, 128 registers, no spills; the last spills 8 bytes)
_DV_SPACE = [({"BK": 64, "BV": 64}, 4, 2), ({"BK": 32, "BV": 64}, 4, 2), ({"BK": 64, "BV": 128}, 8, 2),
             ({"BK": 32, "BV": 64}, 4, 3), ({"BK": 32, "BV": 32}, 4, 2)]  # the last two added, not yet timed
# 8 warps only: with 4 warps this kernel spills, and (BK=32, 4 warps) is the shape of triton issue 11366. Since the
# seventh session (dA read from memory, whole-chunk intra matmuls): 231 registers and no spills for (32, 64, 8 warps);
# capped at 128 registers (2 programs per SM) (32, 32) spills nothing and (32, 64) 260 bytes (sm_90a, ptxas -v)
_DQK_SPACE = [({"BK": 32, "BV": 64}, 8, 2), ({"BK": 32, "BV": 32}, 8, 2, 128), ({"BK": 32, "BV": 64}, 8, 2, 128),
              ({"BK": 32, "BV": 32}, 8, 2), ({"BK": 64, "BV": 64}, 8, 2)]  # the last spills 84 bytes


# ------------------------------------------------------------------------------------------------ helpers ---

@triton.jit
def _seq_chunks(coff, NTS, i_n, HAS_COFF: tl.constexpr):
    """First and one-past-last chunk of sequence ``i_n`` (int64)."""
    if HAS_COFF:
        c0 = tl.load(coff + i_n).to(tl.int64)
        c1 = tl.load(coff + i_n + 1).to(tl.int64)
    else:
        c0 = i_n.to(tl.int64) * NTS
        c1 = c0 + NTS
    return c0, c1


@triton.jit
def _h_loop(k, v, g, gc, h, h0, ht, c0, c1, i_n, i_h, i_k, i_v, H: tl.constexpr, K: tl.constexpr,
            V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
            STORE_HT: tl.constexpr, PREC: tl.constexpr):
    """Forward state recurrence over chunks ``c0 .. c1-1``: stores ``h_c`` (dtype of ``h``), ``gc`` (by the
    ``i_v == 0`` programs) and, if asked, the final state."""
    o_t = tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    if HAS_H0:
        b_h = tl.load(h0 + (i_n.to(tl.int64) * H + i_h) * K * V + p_s, mask=m_kv, other=0.0).to(tl.float32)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(c0, c1):
        tl.store(h + (c * H + i_h) * K * V + p_s, b_h.to(h.dtype.element_ty), mask=m_kv)
        rows = c * BT + o_t
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_gc = tl.cumsum(tl.load(g + p_k, mask=m_k[None, :], other=0.0).to(tl.float32), axis=0)
        tl.store(gc + p_k, b_gc, mask=m_k[None, :] & (i_v == 0))
        b_gl = tl.sum(tl.where(o_t[:, None] == BT - 1, b_gc, 0.0), axis=0)  # exactly the last row of gc
        b_k = tl.load(k + p_k, mask=m_k[None, :], other=0.0)
        b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=m_v[None, :], other=0.0)
        b_kd = (b_k * tl.exp(b_gl[None, :] - b_gc)).to(b_v.dtype)
        b_h = b_h * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_kd), b_v, input_precision=PREC)
    if STORE_HT:
        tl.store(ht + (i_n.to(tl.int64) * H + i_h) * K * V + p_s, b_h, mask=m_kv)


@triton.jit
def _dh_loop(q, g, do, dh, dht, dh0, c0, c1, i_n, i_h, i_k, i_v, scale, H: tl.constexpr, K: tl.constexpr,
             V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_DHT: tl.constexpr,
             STORE_DH0: tl.constexpr, PREC: tl.constexpr):
    """Reverse state-gradient recurrence: stores ``dh_c`` (gradient of the state leaving chunk c, float32)
    and ``d h0``."""
    o_t = tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    if HAS_DHT:
        b_dh = tl.load(dht + (i_n.to(tl.int64) * H + i_h) * K * V + p_s, mask=m_kv, other=0.0).to(tl.float32)
    else:
        b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    for i in range(c1 - c0):
        c = c1 - 1 - i
        tl.store(dh + (c * H + i_h) * K * V + p_s, b_dh, mask=m_kv)
        rows = c * BT + o_t
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_gc = tl.cumsum(tl.load(g + p_k, mask=m_k[None, :], other=0.0).to(tl.float32), axis=0)
        b_gl = tl.sum(tl.where(o_t[:, None] == BT - 1, b_gc, 0.0), axis=0)
        b_q = tl.load(q + p_k, mask=m_k[None, :], other=0.0)
        b_do = tl.load(do + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=m_v[None, :], other=0.0)
        b_qd = (b_q * tl.exp(b_gc) * scale).to(b_do.dtype)
        b_dh = b_dh * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_qd), b_do, input_precision=PREC)
    if STORE_DH0:
        tl.store(dh0 + (i_n.to(tl.int64) * H + i_h) * K * V + p_s, b_dh, mask=m_kv)


@triton.jit
def _diag_grad_exact(b_m, y, gc, b_g, rows0, i_h, o_t, o_k, m_k, H: tl.constexpr, K: tl.constexpr,
                     BC: tl.constexpr, LATER: tl.constexpr):
    """Diagonal sub-block part of an intra-chunk gradient, elementwise in log space (fallback path).

    ``LATER=False`` (dq): ``out_r = sum_{p in sub(r), p <= r} M[r, p] y_p exp(gc_r - gc_p)``;
    ``LATER=True`` (dk):  ``out_r = sum_{p in sub(r), p >= r} M[r, p] y_p exp(gc_p - gc_r)``.
    ``b_m`` is the ``[BT, BT]`` (causally masked) score gradient, ``b_g`` the rows' ``gc`` block."""
    b_out = tl.zeros(b_g.shape, dtype=tl.float32)
    start = (o_t // BC) * BC
    for d in range(BC):
        p = start + d
        b_mp = tl.sum(tl.where(o_t[None, :] == p[:, None], b_m, 0.0), axis=1)  # M[r, p(r)]
        pp = ((rows0 + p)[:, None] * H + i_h) * K + o_k[None, :]
        b_y = tl.load(y + pp, mask=m_k[None, :], other=0.0).to(tl.float32)
        b_gp = tl.load(gc + pp, mask=m_k[None, :], other=0.0)
        if LATER:
            ok = p >= o_t
            b_e = tl.exp(tl.where(ok[:, None], b_gp - b_g, 0.0))
        else:
            ok = p <= o_t
            b_e = tl.exp(tl.where(ok[:, None], b_g - b_gp, 0.0))
        b_out += tl.where(ok[:, None], b_mp[:, None] * b_y * b_e, 0.0)
    return b_out


# ------------------------------------------------------------------------------------------------ kernels ---

@_tune(_STATE_SPACE, key=["K", "V"])
@triton.jit(do_not_specialize=["NTS"])
def _gla_fwd_h_kernel(k, v, g, gc, h, h0, ht, coff, NTS, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
                      HAS_COFF: tl.constexpr, PREC: tl.constexpr):
    i_kv, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    NV: tl.constexpr = (V + BV - 1) // BV
    c0, c1 = _seq_chunks(coff, NTS, i_n, HAS_COFF)
    _h_loop(k, v, g, gc, h, h0, ht, c0, c1, i_n, i_h, i_kv // NV, i_kv % NV, H, K, V, BT, BK, BV, HAS_H0,
            True, PREC)


@_tune(_STATE_SPACE, key=["K", "V"])
@triton.jit(do_not_specialize=["NTS"])
def _gla_bwd_states_kernel(q, k, v, g, do, gc, h, dh, h0, dht, dh0, coff, NTS, scale, H: tl.constexpr,
                           K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                           HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, HAS_COFF: tl.constexpr,
                           PREC: tl.constexpr):
    """Programs with ``program_id(2) < H`` recompute the states (float32) and write ``gc``; the others run the
    reverse state-gradient pass."""
    i_kv, i_n, i_hh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    NV: tl.constexpr = (V + BV - 1) // BV
    c0, c1 = _seq_chunks(coff, NTS, i_n, HAS_COFF)
    if i_hh < H:
        _h_loop(k, v, g, gc, h, h0, None, c0, c1, i_n, i_hh, i_kv // NV, i_kv % NV, H, K, V, BT, BK, BV, HAS_H0,
                False, PREC)
    else:
        _dh_loop(q, g, do, dh, dht, dh0, c0, c1, i_n, i_hh - H, i_kv // NV, i_kv % NV, scale, H, K, V, BT, BK, BV,
                 HAS_DHT, HAS_H0, PREC)


@triton.jit
def _a_block_sub(k, gc, b_q, b_k, b_g, c, i_h, o_t, o_k, m_k, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr,
                 BC: tl.constexpr, PREC: tl.constexpr):
    """One key block's share of the chunk's scores ``[BT, BT]`` (causal) for any decay: the decay split at the first
    row ``r`` of each query's sub-chunk, ``(q_i e^(gc_i - gc_r)) . (k_j e^(gc_r - gc_j))`` (both factors <= 1 for keys
    in earlier sub-chunks), the diagonal blocks in the same matmul while the sub-chunk's span is at most ``e^SPAN``,
    else elementwise in log space. ``b_q`` is the scaled query block."""
    NC: tl.constexpr = BT // BC
    sub = o_t // BC
    b_x = tl.zeros([BT, BT], dtype=tl.float32)
    for s in tl.static_range(NC):
        b_rs = tl.load(gc + ((c * BT + s * BC) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        in_s = sub[:, None] == s
        span = tl.max(tl.where(in_s, tl.abs(b_g - b_rs[None, :]), 0.0))
        b_qa = tl.where(in_s, b_q * tl.exp(tl.minimum(b_g - b_rs[None, :], SPAN)), 0.0)  # other rows: no inf
        b_kb = b_k * tl.exp(tl.minimum(b_rs[None, :] - b_g, SPAN))
        b_p = tl.dot(b_qa, tl.trans(b_kb), input_precision=PREC)
        lim = s * BC + (span <= SPAN).to(tl.int32) * (o_t % BC + 1)
        b_x += tl.where(in_s & (o_t[None, :] < lim[:, None]), b_p, 0.0)
        if span > SPAN:
            for j in range(BC):
                col = s * BC + j
                p = ((c * BT + col) * H + i_h) * K + o_k
                b_kj = tl.load(k + p, mask=m_k, other=0.0).to(tl.float32)
                b_gj = tl.load(gc + p, mask=m_k, other=0.0)
                ok = in_s & (o_t[:, None] >= col)
                b_val = tl.sum(b_q * b_kj[None, :] * tl.exp(tl.where(ok, b_g - b_gj[None, :], 0.0)), axis=1)
                b_x += tl.where(ok & (o_t[None, :] == col), b_val[:, None], 0.0)
    return b_x


@_tune(_AO64_SPACE, key=["K", "V", "FAST"])
@triton.jit
def _gla_fwd_ao64_kernel(q, k, v, gc, h, A, o, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                         BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, FAST: tl.constexpr,
                         PREC: tl.constexpr):
    """Scores and outputs of one whole chunk and head: ``A`` (``[NT, BT, H, BT]``
    float32, upper triangle zero) over the key blocks, then ``o = scale (q e^gc) h_c + A v`` per value block, all
    64-row matmuls.

    Launched twice over the same grid, like :func:`_gla_bwd_dqkg_kernel`: ``FAST=True`` takes the chunks whose decay
    spans at most ``e^SPAN`` (``|gc - gc_first|``, every key channel), where each key block's scores are one matmul
    with the decay split at the chunk's first row; ``FAST=False`` takes the others (:func:`_a_block_sub`)."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    c = i_c.to(tl.int64)
    o_t = tl.arange(0, BT)
    rows = c * BT + o_t
    cspan = 0.0
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_g = tl.load(gc + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_g0 = tl.load(gc + (c * BT * H + i_h) * K + o_k, mask=m_k, other=0.0)
        cspan = tl.maximum(cspan, tl.max(tl.abs(b_g - b_g0[None, :])))
    if (cspan <= SPAN) == FAST:  # NaN spans go to the exact path
        b_a = tl.zeros([BT, BT], dtype=tl.float32)
        for i_k in range(tl.cdiv(K, BK)):
            o_k = i_k * BK + tl.arange(0, BK)
            m_k = o_k < K
            p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
            b_q = tl.load(q + p_k, mask=m_k[None, :], other=0.0).to(tl.float32) * scale
            b_k = tl.load(k + p_k, mask=m_k[None, :], other=0.0).to(tl.float32)
            b_g = tl.load(gc + p_k, mask=m_k[None, :], other=0.0)
            if FAST:
                b_g0 = tl.load(gc + (c * BT * H + i_h) * K + o_k, mask=m_k, other=0.0)
                b_a += tl.dot(b_q * tl.exp(b_g - b_g0[None, :]), tl.trans(b_k * tl.exp(b_g0[None, :] - b_g)),
                              input_precision=PREC)
            else:
                b_a += _a_block_sub(k, gc, b_q, b_k, b_g, c, i_h, o_t, o_k, m_k, H, K, BT, BC, PREC)
        b_a = tl.where(o_t[:, None] >= o_t[None, :], b_a, 0.0)
        tl.store(A + (rows[:, None] * H + i_h) * BT + o_t[None, :], b_a)
        b_a = b_a.to(v.dtype.element_ty)
        for i_v in range(tl.cdiv(V, BV)):
            o_v = i_v * BV + tl.arange(0, BV)
            m_v = o_v < V
            b_o = tl.zeros([BT, BV], dtype=tl.float32)
            for i_k in range(tl.cdiv(K, BK)):
                o_k = i_k * BK + tl.arange(0, BK)
                m_k = o_k < K
                p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
                b_q = tl.load(q + p_k, mask=m_k[None, :], other=0.0)
                b_qg = (b_q * tl.exp(tl.load(gc + p_k, mask=m_k[None, :], other=0.0))).to(b_q.dtype)
                b_h = tl.load(h + ((c * H + i_h) * K + o_k[:, None]) * V + o_v[None, :],
                              mask=m_k[:, None] & m_v[None, :], other=0.0)
                b_o += tl.dot(b_qg, b_h.to(b_q.dtype), input_precision=PREC)
            p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
            b_v = tl.load(v + p_v, mask=m_v[None, :], other=0.0)
            b_o = b_o * scale + tl.dot(b_a, b_v, input_precision=PREC)
            tl.store(o + p_v, b_o.to(o.dtype.element_ty), mask=m_v[None, :])


@_tune(_DV_SPACE, key=["K", "V"])
@triton.jit
def _gla_bwd_dv_kernel(k, gc, A, do, dh, dv, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                       BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr, PREC_A: tl.constexpr):
    """``dv = A^T do + (k e^(gc_last - gc)) dh_c`` per chunk, head and value block."""
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = i_c.to(tl.int64)
    o_t = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    rows = c * BT + o_t
    p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
    b_a = tl.load(A + (rows[:, None] * H + i_h) * BT + o_t[None, :])
    b_do = tl.load(do + p_v, mask=m_v[None, :], other=0.0)
    b_dv = tl.dot(tl.trans(b_a), b_do.to(tl.float32), input_precision=PREC_A)  # transposed load, not a dot result
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_k = tl.load(k + p_k, mask=m_k[None, :], other=0.0)
        b_g = tl.load(gc + p_k, mask=m_k[None, :], other=0.0)
        b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_kd = (b_k * tl.exp(b_gl[None, :] - b_g)).to(b_k.dtype)
        b_dh = tl.load(dh + ((c * H + i_h) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :],
                       other=0.0)
        b_dv += tl.dot(b_kd, b_dh.to(b_k.dtype), input_precision=PREC)
    tl.store(dv + p_v, b_dv.to(dv.dtype.element_ty), mask=m_v[None, :])


@triton.jit
def _intra_grad_sub(q, k, gc, b_q, b_k, b_g, b_da, b_dat, b_dq, b_dk, c, i_h, o_t, o_k, m_k, H: tl.constexpr,
                    K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr):
    """Intra-chunk dq / dk terms added to ``b_dq`` / ``b_dk`` for any decay: the decay split at the first row of
    each query's sub-chunk (dq) and at the last row of each key's sub-chunk (dk); the diagonal blocks inside the
    matmuls while ``|log factor| <= SPAN``, else elementwise in log space."""
    NC: tl.constexpr = BT // BC
    sub = o_t // BC
    p_first = ((c * BT + sub * BC)[:, None] * H + i_h) * K + o_k[None, :]
    b_gs = tl.load(gc + p_first, mask=m_k[None, :], other=0.0)
    b_ge = tl.load(gc + p_first + (BC - 1) * H * K, mask=m_k[None, :], other=0.0)
    span = tl.maximum(tl.max(tl.abs(b_g - b_gs)), tl.max(tl.abs(b_ge - b_g)))
    safe = (span <= SPAN).to(tl.int32)
    b_xq = tl.zeros([BT, BK], dtype=tl.float32)
    b_xk = tl.zeros([BT, BK], dtype=tl.float32)
    for s in tl.static_range(NC):
        p_r = ((c * BT + s * BC) * H + i_h) * K + o_k
        b_rs = tl.load(gc + p_r, mask=m_k, other=0.0)
        b_re = tl.load(gc + p_r + (BC - 1) * H * K, mask=m_k, other=0.0)
        b_kb = b_k * tl.exp(tl.minimum(b_rs[None, :] - b_g, SPAN))
        m_q = (sub[:, None] == s) & (o_t[None, :] < (s + safe) * BC)
        b_xq += tl.dot(tl.where(m_q, b_da, 0.0), b_kb, input_precision=PREC)
        b_qb = b_q * tl.exp(tl.minimum(b_g - b_re[None, :], SPAN))
        m_kk = (sub[:, None] == s) & (o_t[None, :] >= (s + 1 - safe) * BC)
        b_xk += tl.dot(tl.where(m_kk, b_dat, 0.0), b_qb, input_precision=PREC)
    b_dq += b_xq * tl.exp(b_g - b_gs)
    b_dk += b_xk * tl.exp(b_ge - b_g)
    if span > SPAN:
        b_dq += _diag_grad_exact(b_da, k, gc, b_g, c * BT, i_h, o_t, o_k, m_k, H, K, BC, False)
        b_dk += _diag_grad_exact(b_dat, q, gc, b_g, c * BT, i_h, o_t, o_k, m_k, H, K, BC, True)
    return b_dq, b_dk


@triton.jit
def _gla_bwd_da_kernel(v, do, dA, scale, H: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr,
                       PREC: tl.constexpr):
    """``dA = scale do v^T`` (causal, ``[NT, BT, H, BT]`` float32, upper triangle zero) of one chunk and head,
    once (fla ``chunk_gla_bwd_kernel_dA``); the dq/dk kernel reads it instead of forming ``dA`` and ``dA^T``
    itself for every key block."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    c = i_c.to(tl.int64)
    o_t = tl.arange(0, BT)
    rows = c * BT + o_t
    b_da = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + p_v, mask=m_v[None, :], other=0.0)
        b_do = tl.load(do + p_v, mask=m_v[None, :], other=0.0)
        b_da += tl.dot(b_do, tl.trans(b_v), input_precision=PREC)
    b_da = tl.where(o_t[:, None] >= o_t[None, :], b_da * scale, 0.0)
    tl.store(dA + (rows[:, None] * H + i_h) * BT + o_t[None, :], b_da)


@_tune(_DQK_SPACE, key=["K", "V", "FAST"])
@triton.jit
def _gla_bwd_dqkg_kernel(q, k, v, gc, h, do, dh, dA, dq, dk, dg, scale, H: tl.constexpr, K: tl.constexpr,
                         V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                         FAST: tl.constexpr, PREC: tl.constexpr):
    """dq, dk and dg of one chunk, head and key block (all terms; see the module docstring).

    Launched twice over the same grid; each program first measures the span of the decay over its chunk and key
    block, ``max |gc - gc_first|, |gc_last - gc|``. ``FAST=True`` handles the blocks with span ``<= SPAN``
    (realistic gates: fla's logsigmoid / 16 spans about e^3): the intra-chunk dq / dk are one matmul each, the decay
    split at the chunk's first row (dq) and last row (dk), every factor in ``[e^-SPAN, e^SPAN]``. ``FAST=False``
    handles the others with :func:`_intra_grad_sub` and returns at once elsewhere. Two compiled variants rather
    than a runtime branch: the branch kept both paths' registers live (spills, sm_90a ``ptxas -v``)."""
    i_k, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = i_c.to(tl.int64)
    o_t = tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    rows = c * BT + o_t
    p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
    b_g = tl.load(gc + p_k, mask=m_k[None, :], other=0.0)
    b_g0 = tl.load(gc + (c * BT * H + i_h) * K + o_k, mask=m_k, other=0.0)
    b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    cspan = tl.maximum(tl.max(tl.abs(b_g - b_g0[None, :])), tl.max(tl.abs(b_gl[None, :] - b_g)))
    if (cspan <= SPAN) == FAST:  # NaN spans go to the exact path
        p_s = (c * H + i_h) * K * V
        # one pass over the value blocks: the inter-chunk terms
        b_dq = tl.zeros([BT, BK], dtype=tl.float32)
        b_dk = tl.zeros([BT, BK], dtype=tl.float32)
        b_dgk = tl.zeros([BK], dtype=tl.float32)
        for i_v in range(tl.cdiv(V, BV)):
            o_v = i_v * BV + tl.arange(0, BV)
            m_v = o_v < V
            p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
            b_v = tl.load(v + p_v, mask=m_v[None, :], other=0.0)
            b_do = tl.load(do + p_v, mask=m_v[None, :], other=0.0)
            p_h = p_s + o_k[:, None] * V + o_v[None, :]
            b_h = tl.load(h + p_h, mask=m_k[:, None] & m_v[None, :], other=0.0)
            b_dh = tl.load(dh + p_h, mask=m_k[:, None] & m_v[None, :], other=0.0)
            b_dgk += tl.sum(b_h * b_dh, axis=1)
            b_dq += tl.dot(b_do, tl.trans(b_h).to(b_do.dtype), input_precision=PREC)
            b_dk += tl.dot(b_v, tl.trans(b_dh).to(b_v.dtype), input_precision=PREC)
        # dA[i, j] (j <= i) from _gla_bwd_da_kernel; dA^T as the transpose of that loaded tile (never the transpose
        # of a dot result, fla issue 640)
        b_da = tl.load(dA + (rows[:, None] * H + i_h) * BT + o_t[None, :])
        b_dat = tl.trans(b_da)  # dA[j, i] at (i, j), i <= j
        b_k = tl.load(k + p_k, mask=m_k[None, :], other=0.0).to(tl.float32)
        b_q = tl.load(q + p_k, mask=m_k[None, :], other=0.0).to(tl.float32)
        b_dq = b_dq * (scale * tl.exp(b_g))
        b_dk = b_dk * tl.exp(b_gl[None, :] - b_g)
        b_dgk = b_dgk * tl.exp(b_gl) + tl.sum(b_dk * b_k, axis=0)
        if FAST:
            b_dq += tl.dot(b_da, b_k * tl.exp(b_g0[None, :] - b_g), input_precision=PREC) * \
                tl.exp(b_g - b_g0[None, :])
            b_dk += tl.dot(b_dat, b_q * tl.exp(b_g - b_gl[None, :]), input_precision=PREC) * \
                tl.exp(b_gl[None, :] - b_g)
        else:
            b_dq, b_dk = _intra_grad_sub(q, k, gc, b_q, b_k, b_g, b_da, b_dat, b_dq, b_dk, c, i_h, o_t, o_k, m_k,
                                         H, K, BT, BC, BK, PREC)
        b_dg = tl.cumsum(b_q * b_dq - b_k * b_dk, axis=0, reverse=True) + b_dgk[None, :]
        tl.store(dq + p_k, b_dq.to(dq.dtype.element_ty), mask=m_k[None, :])
        tl.store(dk + p_k, b_dk.to(dk.dtype.element_ty), mask=m_k[None, :])
        tl.store(dg + p_k, b_dg.to(dg.dtype.element_ty), mask=m_k[None, :])


# --------------------------------------------------------------------------------------------------- host ---

class _Chunks:
    """Dense ``T % 64 == 0`` batches: a free view and no index tensors (no host-to-device copies);
    otherwise :class:`ChunkLayout` (padded chunks per sequence)."""

    def __init__(self, B: int, T: int, cu_seqlens: torch.Tensor | None, device: torch.device):
        self.B, self.T = B, T
        if cu_seqlens is None and T % CHUNK == 0:
            self.lay, self.N, self.NTS, self.NT, self.coff = None, B, T // CHUNK, B * (T // CHUNK), None
        else:
            self.lay = ChunkLayout(B, T, cu_seqlens, device, CHUNK)
            self.N, self.NTS, self.NT, self.coff = self.lay.N, 0, self.lay.NT, self.lay.chunk_offsets

    def to(self, x: torch.Tensor) -> torch.Tensor:
        if self.lay is None:
            return x.view(self.NT, CHUNK, *x.shape[2:])
        return self.lay.to_chunks(x)

    def back(self, y: torch.Tensor) -> torch.Tensor:
        if self.lay is None:
            return y.view(self.B, self.T, *y.shape[2:])
        return self.lay.from_chunks(y).contiguous()


def _precisions(x: torch.Tensor) -> tuple[str, str]:
    """Matmul precision for float32 operands: exact for float32 inputs (and the interpreter), else tf32
    (3xTF32 for ``A^T do``)."""
    if x.dtype == torch.float32 or interpret_mode():
        return "ieee", "ieee"
    return "tf32", "tf32x3"


def _grid_kv(meta, K, V, N, H2):
    return (cdiv(K, meta["BK"]) * cdiv(V, meta["BV"]), N, H2)


def gla_fwd(q, k, v, g, h0, cu_seqlens, scale, mode):
    """Forward launch (``mode`` "chunk" and "fused_recurrent" share it).

    Returns ``(o [B, T, H, V], final state [N, H, K, V] float32, A [B, T, H, 64] float32)``; A (the
    intra-chunk scores) is saved for the backward."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    ch = _Chunks(B, T, cu_seqlens, q.device)
    qc, kc, vc, gcr = ch.to(q), ch.to(k), ch.to(v), ch.to(g)
    prec, _ = _precisions(q)
    f32 = torch.float32
    gc = torch.empty(ch.NT, CHUNK, H, K, device=q.device, dtype=f32)
    hs = torch.empty(ch.NT, H, K, V, device=q.device, dtype=q.dtype)
    ht = torch.empty(ch.N, H, K, V, device=q.device, dtype=f32)
    _gla_fwd_h_kernel[lambda m: _grid_kv(m, K, V, ch.N, H)](
        kc, vc, gcr, gc, hs, h0, ht, ch.coff, ch.NTS, H=H, K=K, V=V, BT=CHUNK, HAS_H0=h0 is not None,
        HAS_COFF=ch.coff is not None, PREC=prec)
    A = torch.empty(ch.NT, CHUNK, H, CHUNK, device=q.device, dtype=f32)
    oc = torch.empty_like(vc)
    if ch.NT:
        for fast in (True, False):
            _gla_fwd_ao64_kernel[(ch.NT, H)](qc, kc, vc, gc, hs, A, oc, scale, H=H, K=K, V=V, BT=CHUNK, BC=SUB,
                                             FAST=fast, PREC=prec)
    return ch.back(oc), ht, ch.back(A)


def gla_bwd(q, k, v, g, h0, A, cu_seqlens, scale, do, dht):
    """Backward: (dq, dk, dv, dg, d h0 or None) in the dtypes of q, k, v, g and float32."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    ch = _Chunks(B, T, cu_seqlens, q.device)
    qc, kc, vc, gcr, doc, Ac = (ch.to(x) for x in (q, k, v, g, do, A))
    prec, prec_a = _precisions(q)
    f32 = torch.float32
    gc = torch.empty(ch.NT, CHUNK, H, K, device=q.device, dtype=f32)
    hs = torch.empty(ch.NT, H, K, V, device=q.device, dtype=f32)
    dhs = torch.empty_like(hs)
    dh0 = torch.empty(ch.N, H, K, V, device=q.device, dtype=f32) if h0 is not None else None
    _gla_bwd_states_kernel[lambda m: _grid_kv(m, K, V, ch.N, 2 * H)](
        qc, kc, vc, gcr, doc, gc, hs, dhs, h0, dht, dh0, ch.coff, ch.NTS, scale, H=H, K=K, V=V, BT=CHUNK,
        HAS_H0=h0 is not None, HAS_DHT=dht is not None, HAS_COFF=ch.coff is not None, PREC=prec)
    dq, dk = torch.empty_like(qc), torch.empty_like(kc)
    dv = torch.empty_like(vc)
    dg = torch.empty(ch.NT, CHUNK, H, K, device=q.device, dtype=g.dtype)
    if ch.NT:
        _gla_bwd_dv_kernel[lambda m: (cdiv(V, m["BV"]), ch.NT, H)](
            kc, gc, Ac, doc, dhs, dv, H=H, K=K, V=V, BT=CHUNK, PREC=prec, PREC_A=prec_a)
        dA = torch.empty(ch.NT, CHUNK, H, CHUNK, device=q.device, dtype=f32)
        _gla_bwd_da_kernel[(ch.NT, H)](vc, doc, dA, scale, H=H, V=V, BT=CHUNK,
                                       BV=16 if interpret_mode() else _DA_BV, PREC=prec, num_warps=4)
        for fast in (True, False):
            _gla_bwd_dqkg_kernel[lambda m: (cdiv(K, m["BK"]), ch.NT, H)](
                qc, kc, vc, gc, hs, doc, dhs, dA, dq, dk, dg, scale, H=H, K=K, V=V, BT=CHUNK, BC=SUB, FAST=fast,
                PREC=prec)
    return ch.back(dq), ch.back(dk), ch.back(dv), ch.back(dg), dh0
