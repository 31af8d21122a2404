"""Single-pass Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on ``[B, T, D]`` (D contiguous).

Design (a chained scan with decoupled look-back, Merrill & Garland, "Single-pass Parallel Prefix Scan with
Decoupled Look-back", NVIDIA 2016; the CUB ``DeviceScan`` scheme, here per channel block):

* The time axis of every sequence is cut into chunks of ``CT`` steps; one program owns one
  (chunk, sequence, channel block of ``BD``) tile, so there are ``B * T / CT * D / BD`` programs and every
  element of ``a`` and ``b`` is read from HBM once and ``h`` written once (3 passes forward; the backward
  reads ``a``, ``h``, ``do`` and writes ``da``, ``db``: 5 passes). That is what makes the op bound by memory
  bandwidth instead of by a sequential walk over T.
* A program loads its tile, scans it along time with ``tl.associative_scan`` (combine
  ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``), and publishes the tile's aggregate ``(A, B)`` (the affine
  map from the state entering the chunk to the state leaving it). It then looks back over the preceding
  chunks of its sequence, composing their aggregates until it meets one whose inclusive state is already
  published, which gives its carry-in; it publishes its own inclusive state and writes
  ``h = A_cum * carry + B_cum``. Each published word packs a float32 value with a ready flag in one 64-bit
  store, so readers need no fences.
* Programs take their work from an atomic ticket counter in launch order (chunk index slowest), so a chunk
  only ever waits on chunks whose programs are already running: no deadlock, whatever the scheduler does.
* Sequence starts are resets (``a := 0``, ``b := b + a h0``), so variable-length packed sequences
  (``cu_seqlens``), initial states and right-to-left scans (``REVERSE`` maps scan position ``p`` to time
  ``T - 1 - p``) all reduce to the same scan with no copies. A chunk containing a reset publishes its
  inclusive state at once, which also bounds every look-back.

Backward, in scan order (``a'`` is the gate with resets, ``do'`` adds ``d h_T`` at sequence ends)::

    g_p = do'_p + a'_{p+1} g_{p+1}        (a reverse scan: the same machinery walking chunks backwards)
    db_p = g_p,  da_p = g_p h_{p-1}  (h0 at a sequence start),  d log a_p = da_p a_p,  d h0 = a_start g_start

All arithmetic and carries are float32.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode

_FLAG = 1 << 32
_LOW = 0xFFFFFFFF


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _pack(x):
    """float32 -> int64 word holding the value's bits and a ready flag in the high half."""
    return (x.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF) | 4294967296


@triton.jit
def _unpack(w):
    return (w & 0xFFFFFFFF).to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _ready(w):
    """1 when every word of the vector carries its flag."""
    return tl.min(((w >> 32) != 0).to(tl.int32), axis=0)


@triton.jit
def _last_row(x, rows, CT: tl.constexpr):
    return tl.sum(tl.where(rows[:, None] == CT - 1, x, 0.0), axis=0)


@triton.jit
def _look_back(ws_ptr, cid, o_d, m_d, D, STEP: tl.constexpr, RELOAD: tl.constexpr):
    """Carry-in of chunk ``cid``: compose aggregates of chunks ``cid - STEP, cid - 2 STEP, ...`` up to an
    inclusive one (``STEP = 1`` forward; ``-1`` backward, whose predecessors are the following chunks).

    Workspace layout per chunk: three rows of ``D`` words: aggregate A, aggregate B, inclusive state.

    ``RELOAD``: the ``[BD]`` vectors may be held by several threads (more threads than channels in the tile), and
    a reduction need not read every copy, so a copy loaded before the word was written could pass unseen; the
    words are then re-loaded after the readiness test (once it passed they are in L2 and every thread's second
    volatile load sees them). Without replication (``BD >= 32 * num_warps``: each thread owns whole channels,
    ``threadsPerWarp = [1, 32]``, checked in the sm_90 TTGIR by ``tests/kernels/test_gpu_compile.py``) the
    reduction reads every copy, so a step is one round trip: inclusive word and aggregates loaded together.
    """
    k = cid - STEP
    acc_a = tl.full(o_d.shape, 1.0, tl.float32)
    acc_b = tl.zeros(o_d.shape, tl.float32)
    h_in = tl.zeros(o_d.shape, tl.float32)
    go = 1
    while go == 1:
        base = ws_ptr + k * 3 * D
        if RELOAD:
            wi = tl.load(base + 2 * D + o_d, mask=m_d, other=4294967296, volatile=True)
            if _ready(wi) == 1:
                wi = tl.load(base + 2 * D + o_d, mask=m_d, other=4294967296, volatile=True)
                h_in = acc_a * _unpack(wi) + acc_b
                go = 0
            else:
                wa = tl.load(base + o_d, mask=m_d, other=4294967296, volatile=True)
                wb = tl.load(base + D + o_d, mask=m_d, other=4294967296, volatile=True)
                if (_ready(wa) + _ready(wb)) == 2:
                    wa = tl.load(base + o_d, mask=m_d, other=4294967296, volatile=True)
                    wb = tl.load(base + D + o_d, mask=m_d, other=4294967296, volatile=True)
                    acc_b = acc_a * _unpack(wb) + acc_b
                    acc_a = acc_a * _unpack(wa)
                    k = k - STEP
        else:
            wi = tl.load(base + 2 * D + o_d, mask=m_d, other=4294967296, volatile=True)
            wa = tl.load(base + o_d, mask=m_d, other=4294967296, volatile=True)
            wb = tl.load(base + D + o_d, mask=m_d, other=4294967296, volatile=True)
            if _ready(wi) == 1:
                h_in = acc_a * _unpack(wi) + acc_b
                go = 0
            else:
                if (_ready(wa) + _ready(wb)) == 2:
                    acc_b = acc_a * _unpack(wb) + acc_b
                    acc_a = acc_a * _unpack(wa)
                    k = k - STEP
    return h_in


@triton.jit
def _early_poll(ws_ptr, cid, o_d, m_d, D, valid, STEP: tl.constexpr):
    """Inclusive word of the preceding chunk, loaded before the tile is scanned so that its round trip overlaps
    the tile's (``EARLY``); a zero word (not ready, or ``valid`` false) means: take the look-back."""
    return tl.load(ws_ptr + (cid - STEP) * 3 * D + 2 * D + o_d, mask=m_d & valid, other=0, volatile=True)


@triton.jit
def _carry_in(ws_ptr, cid, o_d, m_d, D, pre, STEP: tl.constexpr, EARLY: tl.constexpr, RELOAD: tl.constexpr):
    """Carry-in of chunk ``cid``: the early-polled inclusive word when it was ready (re-loaded under ``RELOAD``,
    as in :func:`_look_back`, so that every thread's copy is current), else the look-back."""
    if EARLY:
        if _ready(pre) == 1:
            if RELOAD:
                pre = tl.load(ws_ptr + (cid - STEP) * 3 * D + 2 * D + o_d, mask=m_d, other=4294967296,
                              volatile=True)
            h_in = _unpack(pre)
        else:
            h_in = _look_back(ws_ptr, cid, o_d, m_d, D, STEP, RELOAD)
    else:
        h_in = _look_back(ws_ptr, cid, o_d, m_d, D, STEP, RELOAD)
    return h_in


@triton.jit
def _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN: tl.constexpr, REVERSE: tl.constexpr):
    """Per row: sequence index, whether the row starts its sequence in scan order, whether it ends it."""
    if IS_VARLEN:
        seq = tl.load(seq_ptr + r, mask=m_t, other=0).to(tl.int64)
        first = tl.load(cu_ptr + seq, mask=m_t, other=0).to(tl.int64)
        last = tl.load(cu_ptr + seq + 1, mask=m_t, other=1).to(tl.int64) - 1
        if REVERSE:
            is_start = r == last
            is_end = r == first
        else:
            is_start = r == first
            is_end = r == last
    else:
        seq = tl.zeros_like(pl) + i_n
        is_start = pl == 0
        is_end = pl == L - 1
    return seq, is_start & m_t, is_end & m_t


@triton.jit
def _tile_of(t, nD, NSEQ, NCH, BACKWARD: tl.constexpr, I64: tl.constexpr):
    """Tile ``(channel block, sequence, chunk)`` of ticket ``t``, in launch order (chunk index slowest; the backward
    walks chunks from the last). Index arithmetic is int32 unless ``I64`` (tensors of >= 2**31 elements): 64-bit
    offsets cost the 32-step tile ~50 registers a thread (211 against 160, sm_90 ``ptxas -v``), and registers bound
    how many tiles an SM keeps in flight."""
    if I64:
        t = t.to(tl.int64)
    else:
        t = t.to(tl.int32)
    i_d = t % nD
    rest = t // nD
    i_n = rest % NSEQ
    j = rest // NSEQ
    if BACKWARD:
        j = NCH - 1 - j
    return i_d, i_n, j


@triton.jit
def _ticket(cnt_ptr, nD, NSEQ, NCH, BACKWARD: tl.constexpr, TICKET: tl.constexpr, I64: tl.constexpr):
    """The program's tile, in launch order (chunk index slowest). ``TICKET``: from an atomic counter, so a chunk
    only waits on chunks whose programs are already running whatever the scheduler does; else from the program
    id, which relies on blocks being dispatched in increasing index order, as CUB's single-pass ``DeviceScan``
    does, and saves one round trip to L2 per program."""
    if TICKET:
        t = tl.atomic_add(cnt_ptr, 1)
    else:
        t = tl.program_id(0)
    return _tile_of(t, nD, NSEQ, NCH, BACKWARD, I64)


@triton.jit
def _fwd_coords(i_d, i_n, j, L, D, REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr):
    rows = tl.arange(0, CT)
    pl = j * CT + rows  # scan positions within the sequence (the whole packed axis when varlen)
    m_t = pl < L
    if REVERSE:
        r = i_n * L + L - 1 - pl
    else:
        r = i_n * L + pl
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    offs = r[:, None] * D + o_d[None, :]
    mask = m_t[:, None] & m_d[None, :]
    return rows, pl, m_t, r, o_d, m_d, offs, mask


@triton.jit
def _fwd_loads(a_ptr, b_ptr, offs, mask, LOG_A: tl.constexpr):
    """The tile's raw ``a`` (or ``log a``) and ``b``, in their storage dtype (masked rows: identity steps)."""
    if LOG_A:
        a = tl.load(a_ptr + offs, mask=mask, other=0.0)
    else:
        a = tl.load(a_ptr + offs, mask=mask, other=1.0)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    return a, b


@triton.jit
def _fwd_tile(
    a_raw, b_raw, pre, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
    h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr, RELOAD: tl.constexpr,
):
    """Scan one loaded tile, publish its aggregate, resolve its carry-in, publish its inclusive state, store h."""
    if LOG_A:
        a = tl.exp(a_raw.to(tl.float32))
    else:
        a = a_raw.to(tl.float32)
    b = b_raw.to(tl.float32)
    cid = i_n * NCH + j
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, REVERSE)
    if HAS_H0:
        h0 = tl.load(h0_ptr + seq[:, None] * D + o_d[None, :], mask=is_start[:, None] & m_d[None, :], other=0.0)
        b += a * h0.to(tl.float32)
    a = tl.where(is_start[:, None], 0.0, a)
    ca, cb = tl.associative_scan((a, b), 0, _combine)
    agg_a = _last_row(ca, rows, CT)
    agg_b = _last_row(cb, rows, CT)
    has_reset = tl.max(is_start.to(tl.int32), axis=0)
    first_is_start = tl.max((is_start & (rows == 0)).to(tl.int32), axis=0)
    wbase = ws_ptr + cid * 3 * D
    if has_reset == 1:  # the chunk's end state does not depend on its carry-in
        tl.store(wbase + 2 * D + o_d, _pack(agg_b), mask=m_d)
    else:
        tl.store(wbase + o_d, _pack(agg_a), mask=m_d)
        tl.store(wbase + D + o_d, _pack(agg_b), mask=m_d)
    h_in = tl.zeros(o_d.shape, tl.float32)
    if first_is_start == 0:
        h_in = _carry_in(ws_ptr, cid, o_d, m_d, D, pre, 1, EARLY, RELOAD)
    if (has_reset == 0) & (not NO_INCLUSIVE):
        tl.store(wbase + 2 * D + o_d, _pack(agg_a * h_in + agg_b), mask=m_d)
    hs = ca * h_in[None, :] + cb
    tl.store(h_ptr + offs, hs.to(h_ptr.dtype.element_ty), mask=mask)
    if STORE_FINAL:
        tl.store(ht_ptr + seq[:, None] * D + o_d[None, :], hs, mask=is_end[:, None] & m_d[None, :])


@triton.jit
def _scan1_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, NO_INCLUSIVE: tl.constexpr, TICKET: tl.constexpr,
    EARLY: tl.constexpr, RELOAD: tl.constexpr, I64: tl.constexpr,
):
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, False, TICKET, I64)
    rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
    a_raw, b_raw = _fwd_loads(a_ptr, b_ptr, offs, mask, LOG_A)
    pre = tl.zeros([BD], tl.int64)
    if EARLY:
        pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j > 0, 1)
    _fwd_tile(a_raw, b_raw, pre, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
              h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
              LOG_A, HAS_H0, STORE_FINAL, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, EARLY, RELOAD)


@triton.jit
def _bwd_coords(i_d, i_n, j, L, D, REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr):
    rows = tl.arange(0, CT)
    pl = j * CT + CT - 1 - rows  # descending scan positions: tile row 0 is the chunk's last position
    m_t = pl < L
    if REVERSE:
        r = i_n * L + L - 1 - pl
        r_next = r - 1  # row of scan position p + 1
        r_prev = r + 1  # row of scan position p - 1
    else:
        r = i_n * L + pl
        r_next = r + 1
        r_prev = r - 1
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    offs = r[:, None] * D + o_d[None, :]
    mask = m_t[:, None] & m_d[None, :]
    return rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask


@triton.jit
def _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A: tl.constexpr):
    """Raw ``h_{p-1}`` and (log gates) ``log a_p`` of a backward tile: loads that need neither the carry nor the
    sequence flags (rows outside the packed axis ``[0, NR)`` are masked; :func:`_bwd_tile` applies the flags)."""
    hp = tl.load(h_ptr + r_prev[:, None] * D + o_d[None, :], mask=mask & ((r_prev >= 0) & (r_prev < NR))[:, None],
                 other=0.0)
    if LOG_A:
        a_here = tl.load(a_ptr + offs, mask=mask, other=0.0)
    else:
        a_here = hp
    return hp, a_here


@triton.jit
def _bwd_loads(a_ptr, do_ptr, r_next, offs, mask, o_d, NR, D):
    """Raw ``do`` and next-position gate of a backward tile (sequence boundaries applied by :func:`_bwd_tile`)."""
    do = tl.load(do_ptr + offs, mask=mask, other=0.0)
    gate = tl.load(a_ptr + r_next[:, None] * D + o_d[None, :], mask=mask & ((r_next >= 0) & (r_next < NR))[:, None],
                   other=0.0)
    return do, gate


@triton.jit
def _bwd_tile(
    do_raw, gate_raw, hp_raw, ah_raw, pre, i_n, j, rows, pl, m_t, r, r_prev, o_d, m_d, offs, mask,
    a_ptr, h0_ptr, h_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH, NR,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr,
    RELOAD: tl.constexpr, LATE_LOADS: tl.constexpr,
):
    """Reverse-scan one loaded backward tile (``g_p = do'_p + a'_{p+1} g_{p+1}``), publish, resolve the carry,
    store ``da`` (or ``d log a``), ``db`` and ``dh0``. ``LATE_LOADS``: ``hp_raw`` / ``ah_raw`` are placeholders and
    the state loads are issued after the scan (fewer live registers while it runs)."""
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, REVERSE)
    do = do_raw.to(tl.float32)
    if HAS_DHT:
        do += tl.load(dht_ptr + seq[:, None] * D + o_d[None, :], mask=is_end[:, None] & m_d[None, :], other=0.0)
    # gate of the next scan position; zero where this row ends its sequence (the next row is a reset)
    m_next = (m_t & (is_end == 0))[:, None] & m_d[None, :]
    if LOG_A:
        gate = tl.exp(gate_raw.to(tl.float32))
    else:
        gate = gate_raw.to(tl.float32)
    gate = tl.where(m_next, gate, tl.where(mask, 0.0, 1.0))
    cid = i_n * NCH + j
    ca, cb = tl.associative_scan((gate, do), 0, _combine)
    agg_a = _last_row(ca, rows, CT)
    agg_b = _last_row(cb, rows, CT)
    has_reset = tl.max(is_end.to(tl.int32), axis=0)
    first_is_end = tl.max((is_end & (rows == 0)).to(tl.int32), axis=0)
    wbase = ws_ptr + cid * 3 * D
    if has_reset == 1:
        tl.store(wbase + 2 * D + o_d, _pack(agg_b), mask=m_d)
    else:
        tl.store(wbase + o_d, _pack(agg_a), mask=m_d)
        tl.store(wbase + D + o_d, _pack(agg_b), mask=m_d)
    g_in = tl.zeros(o_d.shape, tl.float32)
    if (first_is_end == 0) & (j < NCH - 1):
        # chunks are numbered in scan order, the look-back walks to higher chunk ids: mirror the index
        g_in = _carry_in(ws_ptr, cid, o_d, m_d, D, pre, -1, EARLY, RELOAD)
    if (has_reset == 0) & (not NO_INCLUSIVE):
        tl.store(wbase + 2 * D + o_d, _pack(agg_a * g_in + agg_b), mask=m_d)
    g = ca * g_in[None, :] + cb
    if LATE_LOADS:
        hp_raw, ah_raw = _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A)
    hp = tl.where(is_start[:, None], 0.0, hp_raw.to(tl.float32))
    m_s = is_start[:, None] & m_d[None, :]
    if HAS_H0:
        hp += tl.load(h0_ptr + seq[:, None] * D + o_d[None, :], mask=m_s, other=0.0).to(tl.float32)
    da = g * hp
    if LOG_A:
        a_here = tl.exp(ah_raw.to(tl.float32))
        da = da * a_here
    tl.store(da_ptr + offs, da.to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, g.to(db_ptr.dtype.element_ty), mask=mask)
    if HAS_H0:
        if LOG_A:
            a_s = a_here
        else:
            a_s = tl.load(a_ptr + offs, mask=m_s, other=0.0).to(tl.float32)
        tl.store(dh0_ptr + seq[:, None] * D + o_d[None, :], a_s * g, mask=m_s)


@triton.jit
def _scan1_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr,
    L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, NO_INCLUSIVE: tl.constexpr, TICKET: tl.constexpr,
    EARLY: tl.constexpr, RELOAD: tl.constexpr, I64: tl.constexpr,
):
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, True, TICKET, I64)
    NR = NSEQ * L
    rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask = _bwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
    do_raw, gate_raw = _bwd_loads(a_ptr, do_ptr, r_next, offs, mask, o_d, NR, D)
    pre = tl.zeros([BD], tl.int64)
    hp_raw = do_raw
    ah_raw = do_raw
    if EARLY:  # everything that does not depend on the carry goes out before the scan
        pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j < NCH - 1, -1)
        hp_raw, ah_raw = _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A)
    _bwd_tile(do_raw, gate_raw, hp_raw, ah_raw, pre, i_n, j, rows, pl, m_t, r, r_prev, o_d, m_d, offs, mask,
              a_ptr, h0_ptr, h_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH, NR,
              LOG_A, HAS_H0, HAS_DHT, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, EARLY, RELOAD, not EARLY)


def _config(dtype: torch.dtype, D: int, L: int, backward: bool = False) -> tuple[int, int, int]:
    """``(CT, BD, num_warps)``: 32-step chunks of 32 channels with one warp (each thread holds one channel's 32
    steps, so the in-chunk scan needs no shuffles or barriers), except the float32 forward: 64-step chunks over two
    warps (half the look-back hops; float32 loads fill the warp's registers at half the steps).

    H200, B=8 T=8192 D=1024, program-id order with the early poll (``benchmarks/scan1_sweep.py``, sixth session of
    2026-12-03, docs/results.md): bf16 forward 0.208 ms at 32x32x1 against 0.227 (64x32x2), 0.265 (128x32x4) and
    0.352 ms (256x32x8); float32 forward 0.237 ms at 64x32x2 against 0.271 ms at 32x32x1, but its backward was
    slower at 64x32x2 (fwd+bwd 1.059 against 0.775 ms), so the backward keeps 32x32x1. ``SEQLAB_SCAN1_CFG=CT,BD,W``
    overrides both directions (tuning sweeps)."""
    env = os.environ.get("SEQLAB_SCAN1_CFG")
    if env:
        ct, bd, w = (int(x) for x in env.split(","))
        return ct, bd, w
    if interpret_mode():
        return 16, 32, 1
    bd = min(32, max(16, triton.next_power_of_2(D)))
    if dtype == torch.float32 and not backward and L >= 64:
        return 64, bd, 2
    ct = max(16, min(32, triton.next_power_of_2(max(L, 1))))
    return ct, bd, 1


def _flag(name: str, default: bool) -> bool:
    """``SEQLAB_SCAN1_TICKET`` (default 0: tiles in program-id order; 1: from an atomic ticket counter) and
    ``SEQLAB_SCAN1_EARLY_POLL`` (default 1: the preceding chunk's inclusive state is polled while the tile loads,
    and the backward's state loads are issued before its scan; 0: polled after the scan).

    Program-id order relies, as CUB's single-pass ``DeviceScan`` does, on thread blocks being dispatched in
    increasing index order, so that a chunk only waits on chunks whose programs already run; the ticket takes one
    more round trip to L2 per program but needs no such assumption. On an H200 (B=8 T=8192 D=1024, two runs each,
    docs/results.md) the defaults gave a bf16 forward of 0.208 ms against 0.255 ms with the ticket and a late poll,
    float32 0.271 against 0.309 ms; forward+backward bf16 0.911 / 0.808 against 0.938 / 0.764 ms (noisy), float32
    0.801 / 0.775 against 1.143 / 0.800 ms."""
    v = os.environ.get(f"SEQLAB_SCAN1_{name}")
    return default if v is None else v == "1"


def _reload(bd: int, warps: int) -> bool:
    """Whether the look-back re-loads workspace words after its readiness test (see :func:`_look_back`): when a
    ``[BD]`` vector can be replicated over threads (``BD < 32 * num_warps``), or when ``SEQLAB_SCAN1_RELOAD=1``
    asks for it (GPU sweeps; ``0`` cannot turn it off where it is needed)."""
    return bd < 32 * warps or os.environ.get("SEQLAB_SCAN1_RELOAD") == "1"


def _i64(ws: torch.Tensor, x: torch.Tensor) -> bool:
    """64-bit index arithmetic in the kernels when an int32 offset could overflow."""
    return max(ws.numel(), x.numel()) >= 2**31 - 1


def _persist() -> int:
    """``SEQLAB_SCAN1_PERSIST=P``: persistent programs, ``P`` per SM, each looping over tiles with the next tile's
    loads in flight (:mod:`seqlab.kernels.scan1.triton_persist`); 0 (default): one program per tile."""
    return int(os.environ.get("SEQLAB_SCAN1_PERSIST", "0") or 0)


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda" or interpret_mode():
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def _lookback_test() -> bool:
    """``SEQLAB_SCAN1_LOOKBACK_TEST=1``: chunks publish only aggregates (and inclusive states where a sequence
    starts), so every look-back composes aggregates back to the sequence start. Tests use it to exercise the
    path that concurrent GPU programs take but the sequential interpreter never would."""
    return os.environ.get("SEQLAB_SCAN1_LOOKBACK_TEST") == "1"


def _geometry(b: torch.Tensor, cu_seqlens: torch.Tensor | None, ct: int, bd: int):
    B, T, D = b.shape
    if cu_seqlens is None:
        nseq, L, seq_idx = B, T, None
    else:
        nseq, L = 1, T
        pos = torch.arange(T, device=b.device, dtype=cu_seqlens.dtype)
        seq_idx = torch.searchsorted(cu_seqlens[1:], pos, right=True).to(torch.int32)
    nch = triton.cdiv(max(L, 1), ct)
    nd = triton.cdiv(D, bd)
    # workspace: 3 rows of D packed words per chunk, then the ticket counter; zero = nothing published
    ws = torch.zeros(nseq * nch * 3 * D + 2, device=b.device, dtype=torch.int64)
    return nseq, L, nch, nd, seq_idx, ws


def scan1_fwd(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, cu_seqlens: torch.Tensor | None,
    log_a: bool, reverse: bool, output_final_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward kernel. Inputs are validated by the caller. Returns ``(h, h_T or None)``."""
    B, T, D = b.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    h = torch.empty_like(b)
    ht = b.new_empty(N, D, dtype=torch.float32) if output_final_state else None
    if T == 0:
        if ht is not None:
            ht.copy_(h0 if h0 is not None else torch.zeros_like(ht))
        return h, ht
    ct, bd, warps = _config(b.dtype, D, T)
    nseq, L, nch, nd, seq_idx, ws = _geometry(b, cu_seqlens, ct, bd)
    persist = _persist()
    if persist:
        from seqlab.kernels.scan1.triton_persist import _scan1_fwd_persist_kernel
        nt = nseq * nch * nd
        _scan1_fwd_persist_kernel[(min(nt, _num_sms(b.device) * persist),)](
            a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, nt,
            LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
            REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), RELOAD=_reload(bd, warps),
            I64=_i64(ws, h), num_warps=warps,
        )
        return h, ht
    _scan1_fwd_kernel[(nseq * nch * nd,)](
        a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), TICKET=_flag("TICKET", False),
        EARLY=_flag("EARLY_POLL", True), RELOAD=_reload(bd, warps), I64=_i64(ws, h), num_warps=warps,
    )
    return h, ht


def scan1_bwd(
    a: torch.Tensor, h0: torch.Tensor | None, h: torch.Tensor, do: torch.Tensor, dht: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, log_a: bool, reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Launch the backward kernel. Returns ``(da or dlog_a, db, dh0 or None)``."""
    B, T, D = h.shape
    da = torch.empty_like(a)
    db = torch.empty_like(h)
    dh0 = torch.zeros_like(h0, dtype=torch.float32) if h0 is not None else None
    if T == 0:
        if dh0 is not None and dht is not None:
            dh0.copy_(dht)
        return da, db, dh0
    ct, bd, warps = _config(h.dtype, D, T, backward=True)
    nseq, L, nch, nd, seq_idx, ws = _geometry(h, cu_seqlens, ct, bd)
    persist = _persist()
    if persist:
        from seqlab.kernels.scan1.triton_persist import _scan1_bwd_persist_kernel
        nt = nseq * nch * nd
        _scan1_bwd_persist_kernel[(min(nt, _num_sms(h.device) * persist),)](
            a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, nt,
            LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
            REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), RELOAD=_reload(bd, warps),
            I64=_i64(ws, h), num_warps=warps,
        )
        return da, db, dh0
    _scan1_bwd_kernel[(nseq * nch * nd,)](
        a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), TICKET=_flag("TICKET", False),
        EARLY=_flag("EARLY_POLL", True), RELOAD=_reload(bd, warps), I64=_i64(ws, h), num_warps=warps,
    )
    return da, db, dh0
