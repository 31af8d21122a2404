"""Walking Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on dense ``[B, T, D]`` (D contiguous): one program per
(sequence, channel block) walks the whole time axis in chunks of ``CT`` steps and carries the state in registers.

The look-back kernels (:mod:`seqlab.kernels.scan1.triton_scan`) cut time into 32-step chunks run by short programs
chained through a workspace. This form needs no workspace, no fill and no look-back, but has only ``B * D / BD``
programs; it keeps HBM busy with few of them because its loop is software-pipelined by Triton
(``tl.range(num_stages=S)``: ``cp.async`` copies of the next ``S - 1`` chunks into shared memory while one is
scanned, on sm_80 and later), so the bytes in flight sit in shared memory, not in registers.

H200, B=8 T=8192 D=1024, log gates, float32, from CUDA graphs (twelfth session, docs/results.md): forward 0.200 ms
(look-back kernel 0.212, accelerated-scan 0.192, three-pass torch add 0.185), forward+backward 0.552 ms (look-back
0.693, accelerated-scan 0.548); defaults and sweeps in :func:`seqlab.kernels.scan1.triton_launch._walk_config`.
In bf16 the walk is slower (probe ``benchmarks/scan1_walk_probe.py``: forward 0.168 against 0.129 ms; a copy
through the same loop took 0.125-0.131 ms): one channel a thread loads 2 bytes, below ``cp.async``'s 4, so Triton
does not pipeline those loads (sm_90 TTGIR, ``tests/kernels/test_gpu_compile.py``), and two adjacent channels a
thread halve the programs (0.42-0.55 ms). bf16 keeps the look-back kernels.

Chunks are ``[BC, TS, TI, VEC]`` tiles: ``TS`` segments of ``TI = CT / TS`` consecutive steps. At ``VEC = 1``
Triton orders the layout by the channels' contiguity (float32, 32 channels, one warp: 4 channels a thread, which gives
16-byte ``cp.async`` copies) and puts the segments over the remaining 4 threads, so each segment is scanned in-thread
(``tl.associative_scan`` along ``TI``) and a walk over the ``TS`` segment aggregates (:func:`_seg_carries`) gives
each segment's carry: ``h = A_cum * carry + B_cum``. With one segment the scan ran across threads (sm_90: 1040
shuffles a 64-step chunk against 112). Forward: the state entering the sequence is ``h0`` (or zero), the state
leaving it is the final state. Backward, walking from the last chunk, ``g_p = do_p + a_{p+1} g_{p+1}`` with ``g``
entering at ``d h_T`` (positions past the end are identity steps), ``db = g``, ``da_p = g_p h_{p-1}`` (``h_{-1} =
h0``), ``d log a_p = da_p a_p``, ``d h0 = a_0 g_0``. ``REVERSE`` maps scan position ``p`` to time
``T - 1 - p``. All arithmetic float32. Host side: :mod:`seqlab.kernels.scan1.triton_launch` (``_walk_config``,
``scan1_fwd`` / ``scan1_bwd``).
"""
from __future__ import annotations

import triton
import triton.language as tl

from seqlab.kernels.triton_math import exp_ftz


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _walk_chans(pid, nD, D, BC: tl.constexpr, VEC: tl.constexpr, I64: tl.constexpr):
    if I64:
        pid = pid.to(tl.int64)
    i_d = pid % nD
    i_n = pid // nD
    o_d = i_d * (BC * VEC) + tl.arange(0, BC)[:, None] * VEC + tl.arange(0, VEC)[None, :]
    return i_n, o_d, o_d < D


@triton.jit
def _ld(ptr, mask, other, MASKED: tl.constexpr):
    if MASKED:
        return tl.load(ptr, mask=mask, other=other).to(tl.float32)
    else:
        return tl.load(ptr).to(tl.float32)


@triton.jit
def _st(ptr, x, mask, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptr, x.to(ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ptr, x.to(ptr.dtype.element_ty))


@triton.jit
def _combine_excl(a1, b1, ea1, eb1, a2, b2, ea2, eb2):
    """Scan operator over (inclusive map, exclusive map) pairs: the exclusive map of a concatenation's right part is
    the left part's inclusive map composed with its own exclusive map (associative; a single element's exclusive map
    is the identity)."""
    return a1 * a2, a2 * b1 + b2, a1 * ea2, ea2 * b1 + eb2


@triton.jit
def _seg_carries(ca, cb, h, TS: tl.constexpr, TI: tl.constexpr, SEGSCAN: tl.constexpr = 0):
    """Two-level chunk scan, second level: ``ca, cb`` ``[BC, TS, TI, VEC]`` are the in-segment scans (zero carry)
    of ``TS`` segments of ``TI`` steps; returns the state entering each segment ``[BC, TS, VEC]`` given carry ``h``
    entering the chunk, and the state leaving the chunk. Segments lie across threads. ``SEGSCAN = 0``: a walk over
    the ``TS`` segment aggregates (two reductions a segment); ``1``: one scan across the segments of (inclusive,
    exclusive) map pairs (:func:`_combine_excl`) and one reduction for the state leaving the chunk (fewer shuffles;
    not timed on a GPU yet)."""
    ti = tl.arange(0, TI)[None, None, :, None]
    agg_a = tl.sum(tl.where(ti == TI - 1, ca, 0.0), axis=2)
    agg_b = tl.sum(tl.where(ti == TI - 1, cb, 0.0), axis=2)
    if SEGSCAN:
        one = tl.full(agg_a.shape, 1.0, tl.float32)
        zero = tl.zeros(agg_b.shape, tl.float32)
        _, _, ea, eb = tl.associative_scan((agg_a, agg_b, one, zero), 1, _combine_excl)
        enter = ea * h[:, None, :] + eb
        # the state leaving the last segment, taken by a sum (tl.reduce's butterfly may swap operands, and this map
        # composition does not commute)
        run = tl.sum(tl.where(tl.arange(0, TS)[None, :, None] == TS - 1, agg_a * enter + agg_b, 0.0), axis=1)
    else:
        seg = tl.arange(0, TS)[None, :, None]
        enter = tl.zeros_like(agg_b)
        run = h
        for s in tl.static_range(TS):
            enter = tl.where(seg == s, run[:, None, :], enter)
            ga = tl.sum(tl.where(seg == s, agg_a, 0.0), axis=1)
            gb = tl.sum(tl.where(seg == s, agg_b, 0.0), axis=1)
            run = ga * run + gb
    return enter, run


@triton.jit
def _fwd_chunk(a_ptr, b_ptr, h_ptr, offs, mask, h, LOG_A: tl.constexpr, TS: tl.constexpr, TI: tl.constexpr,
               MASKED: tl.constexpr, SEGSCAN: tl.constexpr):
    """Scan one ``[BC, TS, TI, VEC]`` chunk (row ``s TI + i``) from carry ``h``, store it, return the carry out
    (masked rows are identity steps)."""
    if LOG_A:
        a = exp_ftz(_ld(a_ptr + offs, mask, 0.0, MASKED))
    else:
        a = _ld(a_ptr + offs, mask, 1.0, MASKED)
    b = _ld(b_ptr + offs, mask, 0.0, MASKED)
    ca, cb = tl.associative_scan((a, b), 2, _combine)
    enter, h = _seg_carries(ca, cb, h, TS, TI, SEGSCAN)
    _st(h_ptr + offs, ca * enter[:, :, None, :] + cb, mask, MASKED)
    return h


@triton.jit
def _rows4(TS: tl.constexpr, TI: tl.constexpr):
    """Row within the chunk of each ``[1, TS, TI, 1]`` position: segment ``s``, step ``i`` -> ``s TI + i``."""
    return (tl.arange(0, TS)[:, None] * TI + tl.arange(0, TI)[None, :])[None, :, :, None]


@triton.jit
def _scan1_walk_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, L, D, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, REVERSE: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, I64: tl.constexpr,
    MASK_D: tl.constexpr = 1, TS: tl.constexpr = 1, SEGSCAN: tl.constexpr = 0,
):
    """Full chunks run in the pipelined loop without a time mask (a row mask cost the loop ~45% on the H200:
    ``benchmarks/walk_ab.py``, twelfth session), the ragged last chunk after it with one; ``MASK_D``: channel
    masks (``D`` not a multiple of the block). Chunks are ``[BC, TS, TI, VEC]`` tiles, ``TS`` segments of
    ``TI = CT / TS`` steps (:func:`_seg_carries`)."""
    TI: tl.constexpr = CT // TS
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    r4 = _rows4(TS, TI)
    if REVERSE:
        toff = o_d[:, None, None, :] - r4 * D
    else:
        toff = o_d[:, None, None, :] + r4 * D
    m_dt = m_d[:, None, None, :] & (r4 >= 0)
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    full = L // CT
    for j in tl.range(0, full, num_stages=STAGES):
        if REVERSE:
            row0 = i_n * L + L - 1 - j * CT
        else:
            row0 = i_n * L + j * CT
        h = _fwd_chunk(a_ptr, b_ptr, h_ptr, row0 * D + toff, m_dt, h, LOG_A, TS, TI, MASK_D, SEGSCAN)
    if full * CT < L:  # the ragged last chunk
        if REVERSE:
            row0 = i_n * L + L - 1 - full * CT
        else:
            row0 = i_n * L + full * CT
        mask = m_dt & (full * CT + r4 < L)
        h = _fwd_chunk(a_ptr, b_ptr, h_ptr, row0 * D + toff, mask, h, LOG_A, TS, TI, True, SEGSCAN)
    if STORE_FINAL:
        tl.store(ht_ptr + i_n * D + o_d, h, mask=m_d)


@triton.jit
def _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, offs, nxt, p, L, m_dt, g, h0,
               LOG_A: tl.constexpr, HAS_H0: tl.constexpr, TS: tl.constexpr, TI: tl.constexpr,
               MASK_D: tl.constexpr, EDGE: tl.constexpr, SEGSCAN: tl.constexpr):
    """One backward chunk (tile row 0 = its last scan position; ``p`` the positions, ``[1, TS, TI, 1]``) from carry
    ``g`` (``g`` at the position after it): store ``db``, ``da`` and return ``g`` at its first position. ``EDGE``:
    the chunk holds position 0 or ``L - 1`` (or is ragged), so its rows are masked against the sequence's ends."""
    if EDGE:
        mask = m_dt & (p < L)
        m_nx = m_dt & (p + 1 < L)  # past the end: identity step, g enters the last position as d h_T
        m_pv = mask & (p >= 1)
    else:
        mask = m_dt
        m_nx = m_dt
        m_pv = m_dt
    do = _ld(do_ptr + offs, mask, 0.0, EDGE or MASK_D)
    if LOG_A:
        gate = exp_ftz(_ld(a_ptr + offs + nxt, m_nx, 0.0, EDGE or MASK_D))
    else:
        gate = _ld(a_ptr + offs + nxt, m_nx, 1.0, EDGE or MASK_D)
    hp = _ld(h_ptr + offs - nxt, m_pv, 0.0, EDGE or MASK_D)
    if EDGE and HAS_H0:
        hp += tl.where(p == 0, h0[:, None, None, :], 0.0)
    ca, cb = tl.associative_scan((gate, do), 2, _combine)
    enter, g = _seg_carries(ca, cb, g, TS, TI, SEGSCAN)
    gs = ca * enter[:, :, None, :] + cb
    _st(db_ptr + offs, gs, mask, EDGE or MASK_D)
    da = gs * hp
    if LOG_A:
        da = da * exp_ftz(_ld(a_ptr + offs, mask, 0.0, EDGE or MASK_D))
    _st(da_ptr + offs, da, mask, EDGE or MASK_D)
    return g


@triton.jit
def _bwd_row0(i_n, j, L, REVERSE: tl.constexpr, CT: tl.constexpr):
    """Row of tile row 0 (scan position ``j CT + CT - 1``) of backward chunk ``j``."""
    if REVERSE:
        return i_n * L + L - j * CT - CT
    else:
        return i_n * L + j * CT + CT - 1


@triton.jit
def _scan1_walk_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, L, D, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, REVERSE: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, I64: tl.constexpr,
    MASK_D: tl.constexpr = 1, TS: tl.constexpr = 1, SEGSCAN: tl.constexpr = 0,
):
    """Walks from the last chunk (masked: ragged, and its last position has no next gate) through the interior
    chunks (the pipelined loop, no time masks) to chunk 0 (masked: its first position reads ``h0``)."""
    TI: tl.constexpr = CT // TS
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    r4 = _rows4(TS, TI)
    if REVERSE:
        toff = o_d[:, None, None, :] + r4 * D
        nxt = -D  # the row of scan position p + 1 relative to p's
    else:
        toff = o_d[:, None, None, :] - r4 * D
        nxt = D
    m_dt = m_d[:, None, None, :] & (r4 >= 0)
    g = tl.zeros([BC, VEC], tl.float32)
    if HAS_DHT:
        g = tl.load(dht_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    h0 = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h0 = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    nch = tl.cdiv(L, CT)
    last = nch - 1
    g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, last, L, REVERSE, CT) * D + toff, nxt,
                   last * CT + CT - 1 - r4, L, m_dt, g, h0, LOG_A, HAS_H0, TS, TI, MASK_D, True, SEGSCAN)
    for jj in tl.range(0, nch - 2, num_stages=STAGES):
        j = nch - 2 - jj
        g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, j, L, REVERSE, CT) * D + toff, nxt,
                       j * CT + CT - 1 - r4, L, m_dt, g, h0, LOG_A, HAS_H0, TS, TI, MASK_D, False, SEGSCAN)
    if nch > 1:
        g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, 0, L, REVERSE, CT) * D + toff, nxt,
                       CT - 1 - r4, L, m_dt, g, h0, LOG_A, HAS_H0, TS, TI, MASK_D, True, SEGSCAN)
    if HAS_H0:  # d h0 = a_0 g_0
        if REVERSE:
            r0 = i_n * L + L - 1
        else:
            r0 = i_n * L
        a0 = tl.load(a_ptr + r0 * D + o_d, mask=m_d, other=0.0).to(tl.float32)
        if LOG_A:
            a0 = exp_ftz(a0)
        tl.store(dh0_ptr + i_n * D + o_d, a0 * g, mask=m_d)
