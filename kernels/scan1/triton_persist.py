"""Persistent-program variants of the scan1 look-back kernels (``SEQLAB_SCAN1_PERSIST=P``: ``P`` programs per SM).

Same tiles, same workspace protocol and the same per-tile code as :mod:`seqlab.kernels.scan1.triton_scan`
(``_fwd_tile`` / ``_bwd_tile``); what changes is a program's life. A program of the one-tile kernels runs, in
sequence: ticket atomic, tile load, scan, look-back, store, and exits, so each SM has few loads in flight for much
of the time (H200 profile at B=8 T=8192 D=1024 bf16: a 236 us forward kernel, bound by latency rather than by HBM;
docs/results.md). Here a
program loops: it holds the tickets of the tile it scans (``t``), of the tile whose loads are in flight (``t1``)
and of the one after (``t2``, its atomic in flight), so the next tile's HBM reads overlap this tile's scan,
look-back and stores (a register double buffer; CUB's persistent single-pass scans and the "stream-K" schedules do
the same).

No deadlock: tickets are taken in increasing order by running programs; the smallest unfinished tile is always
some program's *current* tile (its other tickets are larger), and all of its predecessors are finished, so its
look-back ends.
"""
from __future__ import annotations

import triton
import triton.language as tl

from seqlab.kernels.scan1.triton_scan import (
    _bwd_coords, _bwd_loads, _bwd_state_loads, _bwd_tile, _fwd_coords, _fwd_loads, _fwd_tile, _tile_of,
)


@triton.jit(do_not_specialize=["epoch"])
def _scan1_fwd_persist_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, D, NSEQ, NCH, nD, NT, epoch,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, NO_INCLUSIVE: tl.constexpr, RELOAD: tl.constexpr,
    I64: tl.constexpr,
):
    ep = (tl.program_id(0) * 0 + epoch).to(tl.int64)  # a tensor even where epoch == 1 was specialised
    t = tl.atomic_add(cnt_ptr, 1)
    t1 = tl.atomic_add(cnt_ptr, 1)
    i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
    rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
    a_raw, b_raw = _fwd_loads(a_ptr, b_ptr, offs, mask & (t < NT), LOG_A)
    pre = tl.zeros([BD], tl.int64)
    while t < NT:
        t2 = tl.atomic_add(cnt_ptr, 1)
        n_d, n_n, n_j = _tile_of(t1, nD, NSEQ, NCH, False, I64)
        _, _, _, _, _, _, n_offs, n_mask = _fwd_coords(n_d, n_n, n_j, L, D, REVERSE, CT, BD)
        n_a, n_b = _fwd_loads(a_ptr, b_ptr, n_offs, n_mask & (t1 < NT), LOG_A)
        i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, False, I64)
        rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
        _fwd_tile(a_raw, b_raw, pre, ep, i_n, j, rows, pl, m_t, r, o_d, m_d, offs, mask,
                  h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH,
                  LOG_A, HAS_H0, STORE_FINAL, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, False, RELOAD)
        t = t1
        t1 = t2
        a_raw = n_a
        b_raw = n_b


@triton.jit(do_not_specialize=["epoch"])
def _scan1_bwd_persist_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, cnt_ptr,
    L, D, NSEQ, NCH, nD, NT, epoch,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, NO_INCLUSIVE: tl.constexpr, RELOAD: tl.constexpr,
    I64: tl.constexpr,
):
    NR = NSEQ * L
    ep = (tl.program_id(0) * 0 + epoch).to(tl.int64)  # a tensor even where epoch == 1 was specialised
    t = tl.atomic_add(cnt_ptr, 1)
    t1 = tl.atomic_add(cnt_ptr, 1)
    i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, True, I64)
    rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask = _bwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
    mask = mask & (t < NT)
    do_raw, gate_raw = _bwd_loads(a_ptr, do_ptr, r_next, offs, mask, o_d, NR, D)
    hp_raw, ah_raw = _bwd_state_loads(a_ptr, h_ptr, r_prev, offs, mask, o_d, NR, D, LOG_A)
    pre = tl.zeros([BD], tl.int64)
    while t < NT:
        t2 = tl.atomic_add(cnt_ptr, 1)
        n_d, n_n, n_j = _tile_of(t1, nD, NSEQ, NCH, True, I64)
        _, _, _, _, n_next, n_prev, n_od, _, n_offs, n_mask = _bwd_coords(n_d, n_n, n_j, L, D, REVERSE, CT, BD)
        n_mask = n_mask & (t1 < NT)
        n_do, n_gate = _bwd_loads(a_ptr, do_ptr, n_next, n_offs, n_mask, n_od, NR, D)
        n_hp, n_ah = _bwd_state_loads(a_ptr, h_ptr, n_prev, n_offs, n_mask, n_od, NR, D, LOG_A)
        i_d, i_n, j = _tile_of(t, nD, NSEQ, NCH, True, I64)
        rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask = _bwd_coords(i_d, i_n, j, L, D, REVERSE, CT, BD)
        _bwd_tile(do_raw, gate_raw, hp_raw, ah_raw, pre, ep, i_n, j, rows, pl, m_t, r, r_prev, o_d, m_d, offs, mask,
                  a_ptr, h0_ptr, h_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, ws_ptr, L, D, NCH, NR,
                  LOG_A, HAS_H0, HAS_DHT, IS_VARLEN, REVERSE, CT, NO_INCLUSIVE, False, RELOAD, False)
        t = t1
        t1 = t2
        do_raw = n_do
        gate_raw = n_gate
        hp_raw = n_hp
        ah_raw = n_ah
