"""Walking Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on dense ``[B, T, D]`` (D contiguous): one program per
(sequence, channel block) walks the whole time axis in chunks of ``CT`` steps and carries the state in registers.

The look-back kernels (:mod:`seqlab.kernels.scan1.triton_scan`) cut time into 32-step chunks run by short programs
chained through a workspace. This form needs no workspace, no fill and no look-back, but has only ``B * D / BD``
programs; it keeps HBM busy with few of them because its loop is software-pipelined by Triton
(``tl.range(num_stages=S)``: ``cp.async`` copies of the next ``S - 1`` chunks into shared memory while one is
scanned, on sm_80 and later), so the bytes in flight sit in shared memory, not in registers.

H200, B=8 T=8192 D=1024, log gates, float32, from CUDA graphs (``benchmarks/scan1_walk_probe.py``, twelfth session,
docs/results.md): forward 0.197 ms at ``CT = 64``, 32 channels a program, ``S = 3`` (look-back kernel 0.212,
accelerated-scan 0.192, three-pass torch add 0.185); backward kernel 0.364 ms at ``CT = 16``, 16 channels a
program (time split over two threads), ``S = 4`` (look-back kernel 0.483). In bf16 the walk is slower (forward 0.168
against 0.129 ms; a copy through the same loop took 0.125-0.131 ms): one channel a thread loads 2 bytes, below
``cp.async``'s 4, so Triton does not pipeline those loads (sm_90 TTGIR, ``tests/kernels/test_gpu_compile.py``), and
two adjacent channels a thread halve the programs (0.42-0.55 ms). bf16 keeps the look-back kernels.

Tiles are ``[BC, CT, VEC]`` as in the look-back kernels (channels over threads, time inside a thread when
``BC = 32 * num_warps``). Forward: the carry is folded into the chunk's first row (``b_0 += a_0 h``) and the chunk
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
def _row_of(i_n, p, L, REVERSE: tl.constexpr):
    """Row of the packed ``[B * T]`` axis holding scan position ``p`` of sequence ``i_n``."""
    if REVERSE:
        return i_n * L + L - 1 - p
    else:
        return i_n * L + p


@triton.jit
def _first_row(x, rows):
    return tl.where(rows[None, :, None] == 0, x, 0.0)


@triton.jit
def _last(x, rows, CT: tl.constexpr):
    return tl.sum(tl.where(rows[None, :, None] == CT - 1, x, 0.0), axis=1)


@triton.jit
def _scan1_walk_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, L, D, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, REVERSE: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, I64: tl.constexpr,
):
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    rows = tl.arange(0, CT)
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    for j in tl.range(0, tl.cdiv(L, CT), num_stages=STAGES):
        p = j * CT + rows
        m_t = p < L
        offs = _row_of(i_n, p, L, REVERSE)[None, :, None] * D + o_d[:, None, :]
        mask = m_t[None, :, None] & m_d[:, None, :]
        if LOG_A:
            a = tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        else:
            a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(tl.float32)
        b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        b += _first_row(a * h[:, None, :], rows)
        _, hs = tl.associative_scan((a, b), 1, _combine)
        tl.store(h_ptr + offs, hs.to(h_ptr.dtype.element_ty), mask=mask)
        h = _last(hs, rows, CT)  # masked rows past the end are identity steps: this is h_{L-1} in the last chunk
    if STORE_FINAL:
        tl.store(ht_ptr + i_n * D + o_d, h, mask=m_d)


@triton.jit
def _scan1_walk_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, L, D, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, REVERSE: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, I64: tl.constexpr,
):
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    rows = tl.arange(0, CT)  # tile row 0 is the chunk's last scan position
    g = tl.zeros([BC, VEC], tl.float32)
    if HAS_DHT:
        g = tl.load(dht_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    h0 = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        h0 = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    if REVERSE:
        nxt = -D  # the row of scan position p + 1 relative to p's
    else:
        nxt = D
    nch = tl.cdiv(L, CT)
    for jj in tl.range(0, nch, num_stages=STAGES):
        p = (nch - 1 - jj) * CT + CT - 1 - rows
        m_t = p < L
        offs = _row_of(i_n, p, L, REVERSE)[None, :, None] * D + o_d[:, None, :]
        mask = m_t[None, :, None] & m_d[:, None, :]
        do = tl.load(do_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        # gate of position p + 1; past the end an identity step, so g enters the last position as d h_T
        m_nx = (p + 1 < L)[None, :, None] & m_d[:, None, :]
        if LOG_A:
            gate = tl.exp(tl.load(a_ptr + offs + nxt, mask=m_nx, other=0.0).to(tl.float32))
        else:
            gate = tl.load(a_ptr + offs + nxt, mask=m_nx, other=1.0).to(tl.float32)
        m_pv = ((p >= 1) & m_t)[None, :, None] & m_d[:, None, :]
        hp = tl.load(h_ptr + offs - nxt, mask=m_pv, other=0.0).to(tl.float32)
        if HAS_H0:
            hp += tl.where((p == 0)[None, :, None], h0[:, None, :], 0.0)
        do += _first_row(gate * g[:, None, :], rows)
        _, gs = tl.associative_scan((gate, do), 1, _combine)
        g = _last(gs, rows, CT)  # g at the chunk's first position
        tl.store(db_ptr + offs, gs.to(db_ptr.dtype.element_ty), mask=mask)
        da = gs * hp
        if LOG_A:
            da = da * tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        tl.store(da_ptr + offs, da.to(da_ptr.dtype.element_ty), mask=mask)
    if HAS_H0:  # d h0 = a_0 g_0
        r0 = _row_of(i_n, 0, L, REVERSE)
        a0 = tl.load(a_ptr + r0 * D + o_d, mask=m_d, other=0.0).to(tl.float32)
        if LOG_A:
            a0 = tl.exp(a0)
        tl.store(dh0_ptr + i_n * D + o_d, a0 * g, mask=m_d)
