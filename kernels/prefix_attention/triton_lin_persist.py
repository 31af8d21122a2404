"""Prefix attention's value scan as persistent programs that prefetch their next tile
(``SEQLAB_PREFIX_ATTN_SCAN_PERSIST=K``, opt-in, untimed).

The loop of :mod:`seqlab.kernels.scan1.triton_persist` (tickets two ahead, the next tile's raw ``v`` and ``beta``
loading while the current one is scanned, waits in its look-back and is stored; deadlock-free for the reason given
there) around :func:`seqlab.kernels.prefix_attention.triton_lin._pa_tile`, the tile of the one-program-a-tile value
scan. Under ``INLINE`` (the inline score pass) only ``v`` is prefetched: the gates come from the scores and chunk
summaries, L2-resident, when the tile is scanned.
"""
from __future__ import annotations

import triton
import triton.language as tl

from seqlab.kernels.prefix_attention.triton_lin import _pa_tile, _pa_tile_loads
from seqlab.kernels.scan1.triton_persist import _unpack
from seqlab.kernels.scan1.triton_scan import _tile_of


@triton.jit
def _pa_persist_loads(v, beta, t, L, NSEQ, NCH, nD, H: tl.constexpr, V: tl.constexpr, CT: tl.constexpr,
                      BC: tl.constexpr, VEC: tl.constexpr, GROUP_HEAD: tl.constexpr, I64: tl.constexpr,
                      HINTS: tl.constexpr, FLAT: tl.constexpr, INLINE: tl.constexpr, PACK: tl.constexpr):
    i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
    return _pa_tile_loads(v, beta, i_d, i_n, j, L, H, V, CT, BC, VEC, GROUP_HEAD, I64, HINTS, FLAT, INLINE, PACK)


@triton.jit
def _pa_scan_fwd_persist_kernel(
    beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, NSEQ, NCH, nD, NT,
    H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, GROUP_HEAD: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
    EARLY: tl.constexpr, I64: tl.constexpr, TWO: tl.constexpr, OPAQUE: tl.constexpr,
    HINTS: tl.constexpr = 0, FLAT: tl.constexpr = 0,
    s=None, sm=None, sw=None, lse=None, m0=None, mT=None, INLINE: tl.constexpr = 0, NHP: tl.constexpr = 1,
    BP: tl.constexpr = 64, PACK: tl.constexpr = 0,
):
    """Tiles ``t`` (scanned), ``t1`` (loading) and ``t2`` (ticket in flight) from the counter at ``cnt_ptr`` until
    the tickets pass ``NT``; arguments as :func:`seqlab.kernels.prefix_attention.triton_lin._pa_scan_fwd_kernel`
    (``TICKET`` implied), plus ``PACK`` (full bf16/fp16 tiles of two channels a thread: ``v`` carried as int32
    words)."""
    t = tl.atomic_add(cnt_ptr, 1)
    t1 = tl.atomic_add(cnt_ptr, 1)
    v_raw, g_raw = _pa_persist_loads(v, beta, tl.minimum(t, NT - 1), L, NSEQ, NCH, nD, H, V, CT, BC, VEC, GROUP_HEAD,
                                     I64, HINTS, FLAT, INLINE, PACK)
    while t < NT:
        v_nx, g_nx = _pa_persist_loads(v, beta, tl.minimum(t1, NT - 1), L, NSEQ, NCH, nD, H, V, CT, BC, VEC,
                                       GROUP_HEAD, I64, HINTS, FLAT, INLINE, PACK)
        t2 = tl.atomic_add(cnt_ptr, 1)
        i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
        v_cur = v_raw
        if PACK:
            v_cur = _unpack(v_raw, v.dtype.element_ty)
        _pa_tile(v_cur, g_raw, i_d, i_n, j, beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, L, NCH,
                 H, V, HAS_H0, STORE_FINAL, IS_VARLEN, CT, BC, VEC, NO_INCLUSIVE, EARLY, I64, TWO, OPAQUE, HINTS, FLAT,
                 s, sm, sw, lse, m0, mT, INLINE, NHP, BP)
        t = t1
        t1 = t2
        v_raw = v_nx
        g_raw = g_nx
