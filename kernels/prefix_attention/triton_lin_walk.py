"""Prefix attention's forward in scan1's walking form (opt-in, ``SEQLAB_PREFIX_ATTN_SCAN_WALK``): one program per
(sequence, block of ``BC * VEC`` channels of the ``[T, H * V]`` rows) walks the whole sequence, its loads
software-pipelined by Triton and each chunk scanned in ``TS`` segments (:mod:`seqlab.kernels.scan1.triton_walk`). No
workspace, no fill, no look-back.

- ``1`` (:func:`_pa_walk_fwd_kernel`, dense input): the value scan ``o_t = (1 - beta_t) o_{t-1} + beta_t v_t`` (see
  :mod:`seqlab.kernels.prefix_attention.triton_lin`) after the same score pass; replaces ``_pa_scan_fwd_kernel``.
- ``fused`` (:func:`_pa_fused_walk_kernel`, dense or packed input): the score pass folded into the walk. A block
  inside one head scans the head's scores chunk by chunk on ``(max, sum exp)`` pairs (one ``[1, CT]`` tile by
  default, :func:`_pa_fused_chunk_1d`; the two-level form :func:`_lse_seg_carries` with ``SREP = 0``), so one launch reads ``s`` and ``v`` and writes ``o``, ``lse`` and the final state: no
  ``beta`` buffer, no second launch. At B4 T4096 H16 V128 bf16 the score pass took 9.1 us of the 56 us forward and the bar (80% of copy) is
  41 us, so the value scan alone cannot meet it after a separate score pass (docs/results.md, eleventh session).

H200, B4 T4096 H16 V128 bf16, kernels from CUDA graphs (fourteenth and fifteenth sessions, ``bash
benchmarks/pending_gpu.sh $OUT fused14`` / ``fifteen``, ``benchmarks/pa_walk_sweep.py``; docs/results.md): the best
fused tile ``64,32,1,1,3,8`` (8 channels a thread, eight 8-step segments joined by a scan, ``SEGSCAN = 1``) took
0.0896 ms, 38% of copy bandwidth, against the default forward's 0.0545 ms (62.5%); tiles of 4 channels a thread in
16-step segments 0.112-0.149 ms, and ``1`` (score pass, then the value walk) 0.188-0.325 ms. A walking trip is
bound by the latency of its dependent chain, and one warp a program leaves it exposed, so both forms stay opt-in.
The offline issue-floor ranking (``python3 benchmarks/scan1_walk_compile_counts.py --pa``) had put the 4-channel
tiles first: it does not predict these kernels' speed.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode
from seqlab.kernels.triton_math import exp_ftz
from seqlab.kernels.prefix_attention.triton_scan import _lse_combine, _seq_span
from seqlab.kernels.scan1.triton_launch import _segscan, walk_segments
from seqlab.kernels.scan1.triton_walk import _combine, _ld, _rows4, _seg_carries, _st, _walk_chans


@triton.jit
def _pa_walk_chunk(pb, pv, po, mask, mb, h, TS: tl.constexpr, TI: tl.constexpr, MASKED: tl.constexpr,
                   SEGSCAN: tl.constexpr):
    """One chunk from carry ``h``: ``beta`` loaded, then :func:`_pa_values`. ``mb`` masks the ``beta`` pointers;
    masked rows load ``beta = 0``, an identity step."""
    g = _ld(pb, mb, 0.0, MASKED)
    return _pa_values(g, pv, po, mask, h, TS, TI, MASKED, SEGSCAN)


@triton.jit
def _pa_values(g, pv, po, mask, h, TS: tl.constexpr, TI: tl.constexpr, MASKED: tl.constexpr,
               SEGSCAN: tl.constexpr):
    """The value scan of one chunk from carry ``h``: gates ``a = 1 - beta``, inputs ``b = beta v`` (``g = beta``
    broadcast over the channels), two-level scan, store ``o``, return the carry out."""
    vv = _ld(pv, mask, 0.0, MASKED)
    b = g * vv
    a = (1.0 - g) + tl.zeros_like(b)
    ca, cb = tl.associative_scan((a, b), 2, _combine)
    enter, h = _seg_carries(ca, cb, h, TS, TI, SEGSCAN)
    _st(po, ca * enter[:, :, None, :] + cb, mask, MASKED)
    return h


@triton.jit
def _pa_walk_fwd_kernel(
    beta, v, u0, w0, o, uT, wT, L, nD, H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, TS: tl.constexpr,
    I64: tl.constexpr, MASK_D: tl.constexpr, SEGSCAN: tl.constexpr = 0,
):
    """``beta`` is loaded once per channel and step, in the values' layout. (One ``[1, TS, TI, 1]`` load a chunk for
    a block inside one head made Triton 3.6 lay the whole chunk out as the scores' tile: sm_90 offline, bf16 64-step
    chunks, 2689 shuffles and 255 registers against 129 per channel.) The state entering the sequence is
    ``u_0 / w_0`` (zero where ``w_0 = 0``), and ``u_T = o_T w_T``."""
    D: tl.constexpr = H * V
    TI: tl.constexpr = CT // TS
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    hd = o_d // V
    r4 = _rows4(TS, TI)
    toff = o_d[:, None, None, :] + r4 * D
    m_dt = m_d[:, None, None, :] & (r4 >= 0)
    boff = hd[:, None, None, :] + r4 * H
    m_bt = m_dt
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        u = tl.load(u0 + i_n * D + o_d, mask=m_d, other=0.0)
        w = tl.load(w0 + i_n * H + hd, mask=m_d, other=0.0)
        h = tl.where(w > 0, u / tl.where(w > 0, w, 1.0), 0.0)
    full = L // CT
    for j in tl.range(0, full, num_stages=STAGES):
        row0 = i_n * L + j * CT
        h = _pa_walk_chunk(beta + row0 * H + boff, v + row0 * D + toff, o + row0 * D + toff, m_dt, m_bt, h,
                           TS, TI, MASK_D, SEGSCAN)
    if full * CT < L:  # the ragged last chunk
        row0 = i_n * L + full * CT
        m_t = full * CT + r4 < L
        h = _pa_walk_chunk(beta + row0 * H + boff, v + row0 * D + toff, o + row0 * D + toff, m_dt & m_t, m_bt & m_t,
                           h, TS, TI, True, SEGSCAN)
    w = tl.load(wT + i_n * H + hd, mask=m_d, other=0.0)
    tl.store(uT + i_n * D + o_d, h * w, mask=m_d)


@triton.jit
def _lse_seg_carries(cm, cw, M, W, TS: tl.constexpr, TI: tl.constexpr):
    """Second level of the two-level ``(max, sum exp)`` scan of one chunk's scores: ``cm, cw`` ``[1, TS, TI, 1]``
    are the in-segment scans (from the empty pair), ``(M, W)`` ``[1, 1]`` the pair entering the chunk; returns the
    pair entering each segment ``[1, TS, 1]`` (two) and the pair leaving the chunk (two). A walk over the ``TS``
    segment aggregates, as :func:`seqlab.kernels.scan1.triton_walk._seg_carries` with ``SEGSCAN = 0``; every
    ``exp`` argument is ``<= 0`` (:func:`_lse_combine`), so any score range is safe."""
    ti = tl.arange(0, TI)[None, None, :, None]
    end = ti == TI - 1
    # the segment's last row: a sum of one value and zeros (-inf + 0 = -inf for an empty segment's max)
    am = tl.sum(tl.where(end, cm, 0.0), axis=2)
    aw = tl.sum(tl.where(end, cw, 0.0), axis=2)
    seg = tl.arange(0, TS)[None, :, None]
    em = tl.full(am.shape, float("-inf"), tl.float32)
    ew = tl.zeros_like(aw)
    for k in tl.static_range(TS):
        em = tl.where(seg == k, M[:, None, :], em)
        ew = tl.where(seg == k, W[:, None, :], ew)
        gm = tl.sum(tl.where(seg == k, am, 0.0), axis=1)
        gw = tl.sum(tl.where(seg == k, aw, 0.0), axis=1)
        M, W = _lse_combine(M, W, gm, gw)
    return em, ew, M, W


@triton.jit
def _pa_fused_chunk(ps, pv, po, pl, mask, ms, ml, h, M, W, TS: tl.constexpr, TI: tl.constexpr,
                    MASKED: tl.constexpr, SEGSCAN: tl.constexpr):
    """One chunk of the fused walk from the carries ``h`` (the output, ``[BC, VEC]``) and ``(M, W)`` (the head's
    ``(max, sum exp)``, ``[SR, 1]``): scores ``[SR, TS, TI, 1]`` -> ``lse_t``, ``beta_t = exp(s_t - lse_t)`` (0 for
    ``s_t = -inf``), then ``o_t = (1 - beta_t) o_{t-1} + beta_t v_t`` as :func:`_pa_walk_chunk`; ``lse`` stored where
    ``ml`` (the head's first block, one channel group). Masked rows load ``s = -inf``: identity steps for both
    scans."""
    sc = _ld(ps, ms, float("-inf"), MASKED)
    live = sc > float("-inf")
    cm, cw = tl.associative_scan((sc, live.to(tl.float32)), 2, _lse_combine)
    em, ew, M, W = _lse_seg_carries(cm, cw, M, W, TS, TI)
    mt, wt = _lse_combine(em[:, :, None, :], ew[:, :, None, :], cm, cw)
    lt = mt + tl.log(wt)
    g = tl.where(live, exp_ftz(sc - lt), 0.0)
    tl.store(pl, lt, mask=ms & ml)
    return _pa_values(g, pv, po, mask, h, TS, TI, MASKED, SEGSCAN), M, W


@triton.jit
def _pa_fused_chunk_1d(ps, pv, po, pl, mask, ms, ml, h, M, W, TS: tl.constexpr, TI: tl.constexpr,
                       MASKED: tl.constexpr, SEGSCAN: tl.constexpr):
    """:func:`_pa_fused_chunk` with the scores as one ``[1, CT]`` tile (``SREP = 2``): a one-level ``(max, sum
    exp)`` scan over the whole chunk (the ``[1, TS, TI, 1]`` tile's segments lie over lanes anyway, so its second
    level, :func:`_lse_seg_carries`, is a walk of cross-lane reductions), the carry ``(M, W)`` ``[1, 1]`` folded
    into every row, then ``beta`` reshaped to ``[1, TS, TI, 1]`` for the value scan. The pair leaving the chunk is
    the last row's: ``M`` the largest running max (it never falls), ``W`` picked out of the last row."""
    sc = _ld(ps, ms, float("-inf"), MASKED)
    live = sc > float("-inf")
    cm, cw = tl.associative_scan((sc, live.to(tl.float32)), 1, _lse_combine)
    mt, wt = _lse_combine(M, W, cm, cw)
    lt = mt + tl.log(wt)
    g = tl.where(live, exp_ftz(sc - lt), 0.0)
    tl.store(pl, lt, mask=ms & ml)
    last = tl.arange(0, TS * TI)[None, :] == TS * TI - 1
    M = tl.max(mt, axis=1, keep_dims=True)
    W = tl.sum(tl.where(last, wt, 0.0), axis=1, keep_dims=True)
    return _pa_values(tl.reshape(g, [1, TS, TI, 1]), pv, po, mask, h, TS, TI, MASKED, SEGSCAN), M, W


@triton.jit
def _pa_fused_walk_kernel(
    s, v, m0, u0, w0, o, lse, mT, uT, wT, cu, T, nD, H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, TS: tl.constexpr,
    I64: tl.constexpr, MASK_D: tl.constexpr, SEGSCAN: tl.constexpr = 0, VARLEN: tl.constexpr = 0,
    SREP: tl.constexpr = 2,
):
    """The whole forward in one walk (``SEQLAB_PREFIX_ATTN_SCAN_WALK=fused``): one program per (sequence, block of
    ``BC * VEC`` channels inside one head, ``V % (BC * VEC) == 0``) carries the head's ``(m, w)`` pair and its
    channels' output through the sequence, chunk by chunk (:func:`_pa_fused_chunk`); no score pass, no ``beta``
    buffer. Every block of a head scans the head's scores (``1 / (BC * VEC)`` of its value bytes); the first block
    stores ``lse``, ``m_T`` and ``w_T``. The state entering the sequence is ``(m_0, w_0)`` and ``u_0 / w_0`` (zero
    where ``w_0 = 0``), or ``(-inf, 0)`` and zero; ``u_T = o_T w_T``. ``VARLEN``: sequence ``n`` is rows
    ``cu[n] .. cu[n + 1]`` of the packed axis (``B = 1``), else rows ``n T .. n T + T``. ``SREP``: the scores
    tile. ``2``: one ``[1, CT]`` tile scanned in one level (:func:`_pa_fused_chunk_1d`); ``0``: ``[1, TS, TI, 1]``,
    two levels (:func:`_pa_fused_chunk`); ``1``: ``[BC, TS, TI, 1]`` (each score loaded by every channel group, from
    L1), so Triton gives it the values' layout (segments in-thread, no conversion before the value scan) and the
    ``(max, sum)`` pairs are scanned redundantly per channel group; only group 0 stores ``lse``."""
    D: tl.constexpr = H * V
    TI: tl.constexpr = CT // TS
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    c0 = (tl.program_id(0) % nD) * (BC * VEC)
    hd = c0 // V
    first = c0 % V == 0
    r4 = _rows4(TS, TI)
    toff = o_d[:, None, None, :] + r4 * D
    m_dt = m_d[:, None, None, :] & (r4 >= 0)
    SR: tl.constexpr = BC if SREP == 1 else 1
    if SREP == 2:
        r4s = tl.arange(0, CT)[None, :]
        grp = tl.zeros([1, 1], tl.int32)
    else:
        r4s = r4
        grp = tl.arange(0, SR)[:, None, None, None]
    soff = hd + r4s * H + grp * 0
    m_st = (r4s >= 0) & (grp >= 0)
    first_l = first & (grp == 0)  # the lse store: one channel group of the head's first block
    M = tl.full([SR, 1], float("-inf"), tl.float32)
    W = tl.zeros([SR, 1], tl.float32)
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        M = tl.zeros([SR, 1], tl.float32) + tl.load(m0 + i_n * H + hd)
        W = tl.zeros([SR, 1], tl.float32) + tl.load(w0 + i_n * H + hd)
        u = tl.load(u0 + i_n * D + o_d, mask=m_d, other=0.0)
        h = tl.where(W > 0, u / tl.where(W > 0, W, 1.0), 0.0)
    bos, L = _seq_span(i_n, cu, T, VARLEN)
    if not I64:
        bos, L = bos.to(tl.int32), L.to(tl.int32)
    full = L // CT
    for j in tl.range(0, full, num_stages=STAGES):
        row0 = bos + j * CT
        if SREP == 2:
            h, M, W = _pa_fused_chunk_1d(s + row0 * H + soff, v + row0 * D + toff, o + row0 * D + toff,
                                         lse + row0 * H + soff, m_dt, m_st, first_l, h, M, W, TS, TI, MASK_D,
                                         SEGSCAN)
        else:
            h, M, W = _pa_fused_chunk(s + row0 * H + soff, v + row0 * D + toff, o + row0 * D + toff,
                                      lse + row0 * H + soff, m_dt, m_st, first_l, h, M, W, TS, TI, MASK_D, SEGSCAN)
    if full * CT < L:  # the ragged last chunk
        row0 = bos + full * CT
        m_t = full * CT + r4 < L
        m_ts = full * CT + r4s < L
        if SREP == 2:
            h, M, W = _pa_fused_chunk_1d(s + row0 * H + soff, v + row0 * D + toff, o + row0 * D + toff,
                                         lse + row0 * H + soff, m_dt & m_t, m_st & m_ts, first_l, h, M, W, TS, TI,
                                         True, SEGSCAN)
        else:
            h, M, W = _pa_fused_chunk(s + row0 * H + soff, v + row0 * D + toff, o + row0 * D + toff,
                                      lse + row0 * H + soff, m_dt & m_t, m_st & m_ts, first_l, h, M, W, TS, TI, True,
                                      SEGSCAN)
    u_out = h * W
    if HAS_H0:  # an empty packed sequence keeps its initial state exactly
        u_out = tl.where(L > 0, u_out, u)
    tl.store(uT + i_n * D + o_d, u_out, mask=m_d)
    g0 = first & (tl.arange(0, SR)[:, None] == 0)
    tl.store(mT + i_n * H + hd + tl.zeros([SR, 1], tl.int32), M, mask=g0)
    tl.store(wT + i_n * H + hd + tl.zeros([SR, 1], tl.int32), W, mask=g0)




def walk_mode() -> str:
    """``SEQLAB_PREFIX_ATTN_SCAN_WALK``: ``0`` (default: the look-back value scan), ``1`` (the score pass, then the
    walking value scan :func:`_pa_walk_fwd_kernel`) or ``fused`` (the whole forward in one walk,
    :func:`_pa_fused_walk_kernel`, where every channel block lies in one head; else as ``1``)."""
    v = getenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "0")
    if v not in ("0", "1", "fused"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_SCAN_WALK must be 0, 1 or fused, got {v!r}")
    return v


def fused_walk_ok(cfg, V: int) -> bool:
    """Whether the fused walk runs: ``SEQLAB_PREFIX_ATTN_SCAN_WALK=fused`` and a walking tile ``cfg`` whose channel
    blocks each lie in one head (``V`` a multiple of ``BC * VEC``)."""
    return cfg is not None and walk_mode() == "fused" and V % (cfg[1] * cfg[2]) == 0


def _srep() -> int:
    """``SEQLAB_PREFIX_ATTN_FUSED_SREP``: the fused walk's score tile (:func:`_pa_fused_walk_kernel`). ``2``
    (default): one ``[1, CT]`` tile, a one-level scan (:func:`_pa_fused_chunk_1d`); ``0``: ``[1, TS, TI, 1]``, two
    levels; ``1``: ``[BC, TS, TI, 1]`` in the values' layout. sm_90 offline, bf16 64,8,4,1,8,4 (H16 V128): ``0`` 975
    SASS instructions a loop trip, 202 registers; ``2`` 947 and 168; at 128,4,4,1,4,8,1 1276 -> 1241 (``SREP=2
    python3 benchmarks/scan1_walk_compile_counts.py --pa --dtype bf16 ...``). ``1``: 212 -> 160 shuffles, 56 -> 172
    ``ex2``/``lg2``, 144 -> 256 ``cp.async`` against ``0`` (float32 64,32,1,1: spills). Untimed; ``pending_gpu.sh
    fused14`` decides."""
    v = getenv("SEQLAB_PREFIX_ATTN_FUSED_SREP", "2")
    if v not in ("0", "1", "2"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_FUSED_SREP must be 0, 1 or 2, got {v!r}")
    return int(v)


def fused_walk_forward(cfg, s, v, m0, u0, w0, o, lse, mT, uT, wT, cu_seqlens=None) -> None:
    """Launch :func:`_pa_fused_walk_kernel` over ``s`` ``[B, T, H]`` and ``v`` ``[B, T, H, V]``, dense or packed
    (``cu_seqlens``, ``B = 1``): ``o``, ``lse``, ``m_T``, ``u_T``, ``w_T`` written."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    ct, bc, vec, warps, stages, ts = cfg
    D = H * V
    nd = cdiv(D, bc * vec)
    _pa_fused_walk_kernel[(N * nd,)](
        s, v, m0, u0, w0, o, lse, mT, uT, wT, cu_seqlens, T, nd, H=H, V=V, HAS_H0=m0 is not None, CT=ct, BC=bc,
        VEC=vec, STAGES=stages, TS=ts, I64=v.numel() >= 2**31 - 1, MASK_D=D % (bc * vec) != 0, SEGSCAN=_segscan(v.element_size()),
        VARLEN=cu_seqlens is not None, SREP=_srep(), num_warps=warps,
    )


def walk_config(dtype: torch.dtype, varlen: bool) -> tuple[int, int, int, int, int, int] | None:
    """``(CT, BC, VEC, num_warps, STAGES, TS)`` of the walking value scan, or ``None`` (the look-back value scan).
    ``SEQLAB_PREFIX_ATTN_SCAN_WALK`` (:func:`walk_mode`) ``1`` walks dense input, ``fused`` dense or packed input
    (untimed, see the module docstring); ``SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG=CT,BC,VEC,W,S,TS`` sets the tile. Defaults as scan1's walking
    forward (:func:`seqlab.kernels.scan1.triton_launch._walk_config`): 64-step chunks of 32 channels, one warp, 3
    stages, ``TS`` segments from the storage dtype."""
    mode = walk_mode()
    if mode == "0" or (varlen and mode != "fused"):  # the value walk takes dense input only
        return None
    env = getenv("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG")
    if env:
        try:
            vals = tuple(int(x) for x in env.split(","))
        except ValueError:
            vals = ()
        if len(vals) != 6 or min(vals) < 1 or any(x & (x - 1) for i, x in enumerate(vals) if i != 4) \
                or vals[5] > vals[0]:
            raise ValueError("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG must be CT,BC,VEC,W,S,TS: powers of two but S >= 1, "
                             f"TS <= CT; got {env!r}")
        return vals
    if interpret_mode():
        return 16, 16, 1, 1, 2, 4
    ct, bc, vec, w, st = 64, 32, 1, 1, 3
    if mode == "fused" and dtype.itemsize == 4:
        # the fused walk streams one wide tensor (v) where scan1 streams two: as many bytes in flight a program as
        # scan1's timed float32 default (2 stages ahead x 64 x 32 x 8 bytes = 32 KB, 94% of copy on the H200) take
        # 1 + 32 KB / (CT BC VEC itemsize) stages: float32 5. Untimed in float32; in bf16 (H200, fifteenth session,
        # ``pending_gpu.sh fifteen``) 64,32,1,1 took 0.0896, 0.0899 and 0.0902 ms at 3, 4 and 6 stages.
        st = min(8, 1 + cdiv(32768, ct * bc * vec * dtype.itemsize))
    return ct, bc, vec, w, st, walk_segments(dtype, ct, bc, vec, w)


def walk_value_scan(cfg, beta, v, u0, w0, o, uT, wT, has_h0: bool) -> None:
    """Launch :func:`_pa_walk_fwd_kernel` over dense ``v`` ``[B, T, H, V]`` (``o``, ``u_T`` written)."""
    B, T, H, V = v.shape
    ct, bc, vec, warps, stages, ts = cfg
    D = H * V
    nd = cdiv(D, bc * vec)
    _pa_walk_fwd_kernel[(B * nd,)](
        beta, v, u0, w0, o, uT, wT, T, nd, H=H, V=V, HAS_H0=has_h0, CT=ct, BC=bc, VEC=vec, STAGES=stages,
        TS=ts, I64=v.numel() >= 2**31 - 1, MASK_D=D % (bc * vec) != 0, SEGSCAN=_segscan(v.element_size()), num_warps=warps,
    )
