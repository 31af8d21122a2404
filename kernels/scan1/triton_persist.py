"""scan1's forward as persistent programs that prefetch their next tile (``SEQLAB_SCAN1_PERSIST=K``, opt-in).

The single-pass forward (:mod:`seqlab.kernels.scan1.triton_scan`) gives every ``[BC, CT, VEC]`` tile its own program:
a program loads its tile, scans it, waits in the look-back and stores. Its loads are in flight only at its start,
so the bytes an SM has in flight are bounded by the programs its registers hold (about eight 2-warp programs of
~100 registers at the 32x128x2 bf16 tile) times the share of their life spent loading. The float32 forward reaches
94-96% of copy bandwidth with the same tiles, bf16 71-75% (docs/results.md): a bf16 tile is half the bytes for the
same registers and the same look-back.

Here ``K`` programs an SM each take tiles in a loop from an atomic ticket counter, two tickets ahead: while tile
``t`` is scanned, waits in its look-back and is stored, the raw inputs of the next tile ``t1`` are already loading
and the ticket after it, ``t2``, is on its way. The next tile's raw inputs (``a``, ``b`` in their storage dtype)
are the extra registers.

Deadlock freedom: tickets rise in the order programs take them, and a program only ever waits (in the look-back)
on tiles with smaller tickets. Take the smallest ticket ``m`` that any program is scanning: every smaller ticket's
tile was either scanned already or is held, not yet scanned, by a program scanning a ticket below it, which
contradicts ``m`` being the smallest. So the smallest scanned tile always completes, whether or not all the
programs of the grid are resident.

The per-tile work is :func:`seqlab.kernels.scan1.triton_scan._fwd_tile` unchanged: this file only owns the loop.
"""
from __future__ import annotations

import triton
import triton.language as tl

from seqlab.kernels.scan1.triton_scan import (
    _early_poll,
    _flat_ptrs,
    _fwd_coords,
    _fwd_loads,
    _fwd_tile,
    _stream_load,
    _tile_of,
)


@triton.jit
def _packed_ptrs(x_ptr, i_d, i_n, j, L, DK: tl.constexpr, REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr,
                 I64: tl.constexpr):
    """``[BC, CT]`` int32 pointers to the channel pairs of a full 16-bit tile (``PACK``): the ``FLAT`` addresses of
    :func:`_flat_ptrs` with each thread's two channels as one 32-bit word."""
    t = tl.arange(0, CT)
    if REVERSE:
        row0 = i_n * L + L - 1 - j * CT
        toff = -(t * (DK // 2))
    else:
        row0 = i_n * L + j * CT
        toff = t * (DK // 2)
    if I64:
        row0 = tl.cast(row0, tl.int64)
    base = (x_ptr + row0 * DK + i_d * (BC * 2) + tl.arange(0, BC) * 2).to(tl.pointer_type(tl.int32))
    return base[:, None] + toff[None, :]


@triton.jit
def _unpack(x, dtype: tl.constexpr):
    """A packed ``[BC, CT]`` int32 tile as the ``[BC, CT, 2]`` tile of ``dtype`` (16-bit) it holds, low half first."""
    lo = (x & 0xFFFF).to(tl.int16).to(dtype, bitcast=True)
    hi = (x >> 16).to(tl.int16).to(dtype, bitcast=True)
    return tl.join(lo, hi)


@triton.jit
def _tile_loads(a_ptr, b_ptr, t, L, D, NSEQ, NCH, nD, LOG_A: tl.constexpr, REVERSE: tl.constexpr, CT: tl.constexpr,
                BC: tl.constexpr, VEC: tl.constexpr, I64: tl.constexpr, HINTS: tl.constexpr, FLAT: tl.constexpr,
                DK: tl.constexpr, PACK: tl.constexpr = 0):
    """The raw ``a`` and ``b`` of ticket ``t``'s tile, in their storage dtype, or (``PACK``) as ``[BC, CT]`` int32
    words of channel pairs: a loop-carried 16-bit tile is otherwise held one value a register (sm_90 ``ptxas -v``,
    bf16 32x128x2: 244 registers a thread carried as bf16, 214 packed, 96 for one tile a program;
    ``benchmarks/lookback_compile_counts.py``)."""
    i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
    if PACK:
        a_raw = _stream_load(_packed_ptrs(a_ptr, i_d, i_n, j, L, DK, REVERSE, CT, BC, I64), None, None, HINTS)
        b_raw = _stream_load(_packed_ptrs(b_ptr, i_d, i_n, j, L, DK, REVERSE, CT, BC, I64), None, None, HINTS)
    else:
        rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BC, VEC)
        if FLAT:
            a_raw = _stream_load(_flat_ptrs(a_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64), None, None, HINTS)
            b_raw = _stream_load(_flat_ptrs(b_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64), None, None, HINTS)
        else:
            a_raw, b_raw = _fwd_loads(a_ptr, b_ptr, offs, mask, LOG_A, HINTS)
    return a_raw, b_raw


@triton.jit
def _scan1_fwd_persist_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, D, NSEQ, NCH, nD, NT,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
    EARLY: tl.constexpr, I64: tl.constexpr, TWO: tl.constexpr = 0, OPAQUE: tl.constexpr = 0,
    HINTS: tl.constexpr = 0, FLAT: tl.constexpr = 0, DK: tl.constexpr = 0, PACK: tl.constexpr = 0,
):
    """Tiles ``t`` (scanned), ``t1`` (loading) and ``t2`` (ticket in flight) from the counter at ``cnt_ptr``, until
    the tickets pass ``NT`` (the number of tiles; a ticket past the end loads the last tile again, unused).
    ``PACK`` (``FLAT`` 16-bit tiles of two channels a thread): the loads carried to the next trip are int32 words of
    channel pairs (:func:`_tile_loads`)."""
    t = tl.atomic_add(cnt_ptr, 1)
    t1 = tl.atomic_add(cnt_ptr, 1)
    a_raw, b_raw = _tile_loads(a_ptr, b_ptr, tl.minimum(t, NT - 1), L, D, NSEQ, NCH, nD, LOG_A, REVERSE, CT, BC, VEC,
                               I64, HINTS, FLAT, DK, PACK)
    while t < NT:
        a_nx, b_nx = _tile_loads(a_ptr, b_ptr, tl.minimum(t1, NT - 1), L, D, NSEQ, NCH, nD, LOG_A, REVERSE, CT, BC,
                                 VEC, I64, HINTS, FLAT, DK, PACK)
        t2 = tl.atomic_add(cnt_ptr, 1)
        i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
        rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BC, VEC)
        h_flat = None
        if FLAT:
            h_flat = _flat_ptrs(h_ptr, i_n, j, L, o_d, DK, REVERSE, CT, I64)
        pre = tl.zeros([BC, VEC], tl.int64)
        if EARLY:
            pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j > 0, 1)
        a_cur, b_cur = a_raw, b_raw
        if PACK:
            a_cur = _unpack(a_raw, a_ptr.dtype.element_ty)
            b_cur = _unpack(b_raw, b_ptr.dtype.element_ty)
        _fwd_tile(a_cur, b_cur, pre, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
                  h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
                  LOG_A, HAS_H0, STORE_FINAL, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, EARLY, TWO, OPAQUE, HINTS,
                  h_flat, FLAT)
        t = t1
        t1 = t2
        a_raw = a_nx
        b_raw = b_nx
