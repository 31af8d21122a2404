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
In bf16 the walk is slower (probe ``benchmarks/scan1_walk_probe.py``:
forward 0.168 against 0.129 ms; a copy through the same loop took 0.125-0.131 ms): one channel a thread loads 2 bytes, below
``cp.async``'s 4, so Triton does not pipeline those loads (sm_90 TTGIR, ``tests/kernels/test_gpu_compile.py``), and
two adjacent channels a thread halve the programs (0.42-0.55 ms). bf16 keeps the look-back kernels.

Tiles are ``[BC, CT, VEC]`` as in the look-back kernels; at ``VEC = 1`` Triton orders the layout by the channels'
contiguity (float32, 32 channels, one warp: 4 channels a thread, time over 4 threads, sm_90 TTGIR), which gives
16-byte ``cp.async`` copies and costs shuffles in the scan. Forward: the carry is folded into the chunk's first row (``b_0 += a_0 h``) and the chunk
scanned with ``tl.associative_scan``; the state entering the sequence is ``h0`` (or zero), the state leaving it is
the final state. Backward, walking from the last chunk, ``g_p = do_p + a_{p+1} g_{p+1}`` with ``g`` entering at
``d h_T`` (positions past the end are identity steps), ``db = g``, ``da_p = g_p h_{p-1}`` (``h_{-1} = h0``), ``d log
a_p = da_p a_p``, ``d h0 = a_0 g_0``. ``REVERSE`` maps scan position ``p`` to time ``T - 1 - p``. All arithmetic
float32. Host side: :mod:`seqlab.kernels.scan1.triton_launch` (``_walk_config``, ``scan1_fwd`` / ``scan1_bwd``).
"""
from __future__ import annotations

import triton
import triton.language as tl


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
def _first_row(x, rows):
    return tl.where(rows[None, :, None] == 0, x, 0.0)


@triton.jit
def _last(x, rows, CT: tl.constexpr):
    return tl.sum(tl.where(rows[None, :, None] == CT - 1, x, 0.0), axis=1)


@triton.jit
def _fwd_chunk(a_ptr, b_ptr, h_ptr, offs, mask, h, rows, LOG_A: tl.constexpr, CT: tl.constexpr,
               MASKED: tl.constexpr):
    """Scan one chunk from carry ``h``, store it, return the carry out (masked rows are identity steps)."""
    if LOG_A:
        a = tl.exp(_ld(a_ptr + offs, mask, 0.0, MASKED))
    else:
        a = _ld(a_ptr + offs, mask, 1.0, MASKED)
    b = _ld(b_ptr + offs, mask, 0.0, MASKED)
    b += _first_row(a * h[:, None, :], rows)
    _, hs = tl.associative_scan((a, b), 1, _combine)
    _st(h_ptr + offs, hs, mask, MASKED)
    return _last(hs, rows, CT)


@triton.jit
def _scan1_walk_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, L, D, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, REVERSE: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, I64: tl.constexpr,
    MASK_D: tl.constexpr = 1,
):
    """Full chunks run in the pipelined loop without a time mask (a row mask cost the loop ~45% on the H200:
    ``benchmarks/walk_ab.py``, twelfth session), the ragged last chunk after it with one; ``MASK_D``: channel
    masks (``D`` not a multiple of the block)."""
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    rows = tl.arange(0, CT)
    if REVERSE:
        toff = o_d[:, None, :] - (rows * D)[None, :, None]
    else:
        toff = o_d[:, None, :] + (rows * D)[None, :, None]
    m_dt = m_d[:, None, :] & (rows >= 0)[None, :, None]
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    full = L // CT
    for j in tl.range(0, full, num_stages=STAGES):
        if REVERSE:
            row0 = i_n * L + L - 1 - j * CT
        else:
            row0 = i_n * L + j * CT
        h = _fwd_chunk(a_ptr, b_ptr, h_ptr, row0 * D + toff, m_dt, h, rows, LOG_A, CT, MASK_D)
    if full * CT < L:  # the ragged last chunk
        if REVERSE:
            row0 = i_n * L + L - 1 - full * CT
        else:
            row0 = i_n * L + full * CT
        mask = m_dt & (full * CT + rows < L)[None, :, None]
        h = _fwd_chunk(a_ptr, b_ptr, h_ptr, row0 * D + toff, mask, h, rows, LOG_A, CT, True)
    if STORE_FINAL:
        tl.store(ht_ptr + i_n * D + o_d, h, mask=m_d)


@triton.jit
def _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, offs, nxt, p, L, m_dt, g, h0, rows,
               LOG_A: tl.constexpr, HAS_H0: tl.constexpr, CT: tl.constexpr, MASK_D: tl.constexpr,
               EDGE: tl.constexpr):
    """One backward chunk (tile row 0 = its last scan position) from carry ``g`` (``g`` at the position after
    it): store ``db``, ``da`` and return ``g`` at its first position. ``EDGE``: the chunk holds position 0 or
    ``L - 1`` (or is ragged), so its rows are masked against the sequence's ends."""
    if EDGE:
        mask = m_dt & (p < L)[None, :, None]
        m_nx = m_dt & (p + 1 < L)[None, :, None]  # past the end: identity step, g enters the last position as d h_T
        m_pv = mask & (p >= 1)[None, :, None]
    else:
        mask = m_dt
        m_nx = m_dt
        m_pv = m_dt
    do = _ld(do_ptr + offs, mask, 0.0, EDGE or MASK_D)
    if LOG_A:
        gate = tl.exp(_ld(a_ptr + offs + nxt, m_nx, 0.0, EDGE or MASK_D))
    else:
        gate = _ld(a_ptr + offs + nxt, m_nx, 1.0, EDGE or MASK_D)
    hp = _ld(h_ptr + offs - nxt, m_pv, 0.0, EDGE or MASK_D)
    if EDGE and HAS_H0:
        hp += tl.where((p == 0)[None, :, None], h0[:, None, :], 0.0)
    do += _first_row(gate * g[:, None, :], rows)
    _, gs = tl.associative_scan((gate, do), 1, _combine)
    _st(db_ptr + offs, gs, mask, EDGE or MASK_D)
    da = gs * hp
    if LOG_A:
        da = da * tl.exp(_ld(a_ptr + offs, mask, 0.0, EDGE or MASK_D))
    _st(da_ptr + offs, da, mask, EDGE or MASK_D)
    return _last(gs, rows, CT)


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
    MASK_D: tl.constexpr = 1,
):
    """Walks from the last chunk (masked: ragged, and its last position has no next gate) through the interior
    chunks (the pipelined loop, no time masks) to chunk 0 (masked: its first position reads ``h0``)."""
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    rows = tl.arange(0, CT)
    if REVERSE:
        toff = o_d[:, None, :] + (rows * D)[None, :, None]
        nxt = -D  # the row of scan position p + 1 relative to p's
    else:
        toff = o_d[:, None, :] - (rows * D)[None, :, None]
        nxt = D
    m_dt = m_d[:, None, :] & (rows >= 0)[None, :, None]
    g = tl.zeros([BC, VEC], tl.float32)
    if HAS_DHT:
        g = tl.load(dht_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    h0 = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h0 = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    nch = tl.cdiv(L, CT)
    last = nch - 1
    g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, last, L, REVERSE, CT) * D + toff, nxt,
                   last * CT + CT - 1 - rows, L, m_dt, g, h0, rows, LOG_A, HAS_H0, CT, MASK_D, True)
    for jj in tl.range(0, nch - 2, num_stages=STAGES):
        j = nch - 2 - jj
        g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, j, L, REVERSE, CT) * D + toff, nxt,
                       j * CT + CT - 1 - rows, L, m_dt, g, h0, rows, LOG_A, HAS_H0, CT, MASK_D, False)
    if nch > 1:
        g = _bwd_chunk(a_ptr, h_ptr, do_ptr, da_ptr, db_ptr, _bwd_row0(i_n, 0, L, REVERSE, CT) * D + toff, nxt,
                       CT - 1 - rows, L, m_dt, g, h0, rows, LOG_A, HAS_H0, CT, MASK_D, True)
    if HAS_H0:  # d h0 = a_0 g_0
        if REVERSE:
            r0 = i_n * L + L - 1
        else:
            r0 = i_n * L
        a0 = tl.load(a_ptr + r0 * D + o_d, mask=m_d, other=0.0).to(tl.float32)
        if LOG_A:
            a0 = tl.exp(a0)
        tl.store(dh0_ptr + i_n * D + o_d, a0 * g, mask=m_d)
