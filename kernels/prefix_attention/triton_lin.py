"""Prefix attention's forward as scan1's elementwise linear scan (``SEQLAB_PREFIX_ATTN_FWD=scan``).

With ``lse_t = log sum_{i<=t} exp(s_i)`` (the initial state's ``m_0 + log w_0`` included) and the softmax weight of
the newest step ``beta_t = exp(s_t - lse_t)``, the output is the convex recurrence (paper section 3.2: the
(max, numerator, denominator) triple combines associatively; divide the numerator by the denominator)::

    o_t = (1 - beta_t) o_{t-1} + beta_t v_t,        o_{-1} = u_0 / w_0 (or 0)

so once ``lse`` is known the ``V``-wide part is exactly :mod:`seqlab.kernels.scan1`'s ``h_t = a_t h_{t-1} + b_t``
with one gate per (step, head) broadcast over the head's values. Two stages:

1. the score pass: ``(max, sum exp(s - max))`` by associative scans over the scores (``[T, H]`` float32 read once,
   ``lse`` and ``beta`` written once: ``1 / V`` of the value traffic) and the final ``m_T``, ``w_T``;
2. ``_pa_scan_fwd_kernel``: scan1's single-pass forward (tiles of ``CT`` steps x ``BC * VEC`` channels of the
   ``[T, H * V]`` rows, a decoupled look-back over one int64 workspace word per chunk and channel, the two-phase
   tile; see :mod:`seqlab.kernels.scan1.triton_scan`) on ``a = 1 - beta``, ``b = beta v``; ``v`` read once and
   ``o`` written once, and ``u_T = o_T w_T``.

The score pass is chunked by default (:func:`_lse_form`: chunk summaries, then every chunk at once), or one walk a
sequence, or, opt-in, ``inline``: the summaries kernel also fills the look-back workspace and each value-scan tile computes its own
``beta`` (:func:`_pa_inline_gates`), so the forward is two launches. The value scan's tile is :func:`_pa_tile`, run
one tile a program (:func:`_pa_scan_fwd_kernel`) or, opt-in, by persistent programs that prefetch their next tile
(:mod:`seqlab.kernels.prefix_attention.triton_lin_persist`).

Every factor is in ``[0, 1]``: no overflow for any score range (the ``(m, w)`` scan keeps ``exp`` arguments
``<= 0``). ``1 - beta_t`` stands for ``exp(lse_{t-1} - lse_t)``; where ``beta_t`` rounds to 1 the absolute error of
the gate is that of ``beta_t`` (~6e-8), and the previous output it multiplies has weight ~0.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode, next_pow2
from seqlab.kernels.triton_math import exp_ftz
from seqlab.kernels.prefix_attention.triton_lin_walk import (
    fused_walk_forward,
    fused_walk_ok,
    walk_config,
    walk_value_scan,
)
from seqlab.kernels.prefix_attention.triton_scan import (
    _fwd_outputs,
    _keep_initial,
    _lookback_test,
    _lse_combine,
    _seq_span,
)
from seqlab.kernels.scan1.triton_launch import (
    _config,
    _flag,
    _geometry,
    _hints,
    _i64,
    _lanes,
    _packable,
    _persist,
    _phases,
    _regcap,
    _sm_count,
)
from seqlab.kernels.scan1.triton_persist import _packed_ptrs
from seqlab.kernels.scan1.triton_scan import (
    _chans,
    _combine,
    _early_poll,
    _fwd_coords,
    _link,
    _opaque,
    _rows,
    _seq_flags,
    _store_tile,
    _stream_load,
    _ticket,
)


@triton.jit
def _state_in(m0, w0, i_nh, m_h, BH: tl.constexpr, HAS_H0: tl.constexpr):
    """The initial ``(m, w)`` of ``BH`` heads, or the empty pair ``(-inf, 0)``."""
    if HAS_H0:
        b_m = tl.load(m0 + i_nh, mask=m_h, other=float("-inf"))
        b_w = tl.load(w0 + i_nh, mask=m_h, other=0.0)
    else:
        b_m = tl.full([BH], float("-inf"), tl.float32)
        b_w = tl.zeros([BH], tl.float32)
    return b_m, b_w


@triton.jit
def _score_tile(s, lse, beta, ptr, mask, b_m, b_w):
    """Scan one ``[BT, BH]`` tile of scores from the carry ``(b_m, b_w)``: store ``lse_t = m_t + log w_t`` and
    ``beta_t = exp(s_t - lse_t)`` (0 for ``s_t = -inf``); return the per-row ``(m_t, w_t)``."""
    b_s = tl.load(s + ptr, mask=mask, other=float("-inf")).to(tl.float32)
    live = b_s > float("-inf")
    cm, cw = tl.associative_scan((b_s, live.to(tl.float32)), 0, _lse_combine)
    mt, wt = _lse_combine(b_m[None, :], b_w[None, :], cm, cw)
    lt = mt + tl.log(wt)
    tl.store(lse + ptr, lt, mask=mask)
    tl.store(beta + ptr, tl.where(live, exp_ftz(b_s - lt), 0.0), mask=mask)
    return mt, wt


@triton.jit
def _pa_lse_kernel(s, lse, beta, m0, w0, mT, wT, cu, T, H: tl.constexpr, BT: tl.constexpr, BH: tl.constexpr,
                   HAS_H0: tl.constexpr, VARLEN: tl.constexpr):
    """One program per (sequence, block of ``BH`` heads) walks its sequence in ``[BT, BH]`` tiles (one tile when
    ``T <= BT``): ``(m_t, w_t)`` by an associative scan combined with the carry, ``lse_t = m_t + log w_t``,
    ``beta_t = exp(s_t - lse_t)`` (0 for ``s_t = -inf``); the last carry is the final ``(m_T, w_T)``."""
    i_n, i_hb = tl.program_id(0), tl.program_id(1)
    bos, L = _seq_span(i_n, cu, T, VARLEN)
    o_t = tl.arange(0, BT)
    o_h = i_hb * BH + tl.arange(0, BH)
    m_h = o_h < H
    i_nh = tl.cast(i_n, tl.int64) * H + o_h
    b_m, b_w = _state_in(m0, w0, i_nh, m_h, BH, HAS_H0)
    last = (o_t == BT - 1)[:, None]
    for j in tl.range(0, tl.cdiv(L, BT)):
        t = j * BT + o_t
        rows = bos + t
        mask = (t < L)[:, None] & m_h[None, :]
        ptr = rows[:, None] * H + o_h[None, :]
        mt, wt = _score_tile(s, lse, beta, ptr, mask, b_m, b_w)
        # padded rows (s = -inf) leave the pair unchanged, so the tile's last row is the carry
        b_m = tl.max(tl.where(last, mt, float("-inf")), 0)
        b_w = tl.sum(tl.where(last, wt, 0.0), 0)
    tl.store(mT + i_nh, b_m, mask=m_h)
    tl.store(wT + i_nh, b_w, mask=m_h)


@triton.jit
def _pa_chunk_rows(i_n, j, cu, T, CT: tl.constexpr, VARLEN: tl.constexpr):
    """(rows of chunk ``j`` of sequence ``i_n`` in the packed axis, their mask, sequence length)."""
    bos, L = _seq_span(i_n, cu, T, VARLEN)
    t = j * CT + tl.arange(0, CT)
    return bos + t, t < L, L


@triton.jit
def _pa_lse_sum_kernel(s, sm, sw, cu, T, NCH, ws, D, H: tl.constexpr, CT: tl.constexpr, BH: tl.constexpr,
                       VARLEN: tl.constexpr, FILL: tl.constexpr = 0, V: tl.constexpr = 1, FB: tl.constexpr = 1):
    """Chunk summaries of the chunked score pass: ``(max s, sum exp(s - max))`` of chunk ``j`` of sequence ``n``
    for ``BH`` heads, into ``sm``/``sw`` ``[N, NCH, H]`` (chunks past a sequence's end write nothing).

    ``FILL`` (dense input, the inline score pass): also fill the value scan's look-back words of this chunk and
    these heads' ``BH * V`` channels with all ones (unwritten), and zero the two ticket-counter words after them
    (program 0), in place of separate launches; chunks here are the value scan's."""
    j, i_n, i_hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows, m_t, L = _pa_chunk_rows(i_n, j, cu, T, CT, VARLEN)
    if FILL:
        o_f = tl.arange(0, FB)
        base = ws + (tl.cast(i_n, tl.int64) * NCH + j) * D
        for f0 in tl.static_range(0, BH * V, FB):
            ch = i_hb * (BH * V) + f0 + o_f
            tl.store(base + ch, tl.full([FB], -1, tl.int64), mask=(f0 + o_f < BH * V) & (ch < D))
        if (j == 0) & (i_n == 0) & (i_hb == 0):
            tl.store(ws + tl.cast(tl.num_programs(1), tl.int64) * NCH * D + tl.arange(0, 2), tl.zeros([2], tl.int64))
    if j * CT < L:
        o_h = i_hb * BH + tl.arange(0, BH)
        m_h = o_h < H
        b_s = tl.load(s + rows[:, None] * H + o_h[None, :], mask=m_t[:, None] & m_h[None, :],
                      other=float("-inf")).to(tl.float32)
        m = tl.max(b_s, 0)
        w = tl.sum(tl.where(b_s > float("-inf"), exp_ftz(b_s - m[None, :]), 0.0), 0)
        off = (tl.cast(i_n, tl.int64) * NCH + j) * H + o_h
        tl.store(sm + off, m, mask=m_h)
        tl.store(sw + off, w, mask=m_h)


@triton.jit
def _sums_carry(sm, sw, i_n, j, NCH, H: tl.constexpr, o_h, m_h, b_m, b_w, BP: tl.constexpr):
    """Fold the summaries of chunks ``0 .. j - 1`` of sequence ``i_n`` (``[BP]`` chunks at a time) for heads ``o_h``
    into the carry ``(b_m, b_w)``."""
    o_p = tl.arange(0, BP)
    base = tl.cast(i_n, tl.int64) * NCH * H
    for k0 in tl.range(0, j, BP):
        k = k0 + o_p
        mk = (k < j)[:, None] & m_h[None, :]
        ptr = base + k[:, None] * H + o_h[None, :]
        pm = tl.load(sm + ptr, mask=mk, other=float("-inf"))
        pw = tl.load(sw + ptr, mask=mk, other=0.0)
        bm = tl.max(pm, 0)
        bw = tl.sum(tl.where(pm > float("-inf"), pw * exp_ftz(pm - bm[None, :]), 0.0), 0)
        b_m, b_w = _lse_combine(b_m, b_w, bm, bw)
    return b_m, b_w


@triton.jit
def _pa_lse_chunk_kernel(s, sm, sw, lse, beta, m0, w0, mT, wT, cu, T, NCH, H: tl.constexpr, CT: tl.constexpr,
                         BH: tl.constexpr, BP: tl.constexpr, HAS_H0: tl.constexpr, VARLEN: tl.constexpr):
    """The chunked score pass: chunk ``j`` reduces the summaries of chunks ``0 .. j - 1`` (``[BP, BH]`` at a time)
    and the initial state into its carry, scans its own ``[CT, BH]`` scores with it and writes ``lse``, ``beta``
    and, from a sequence's last chunk, ``(m_T, w_T)``. Every chunk of every sequence runs at once: no walk over T
    and no waiting between programs."""
    j, i_n, i_hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows, m_t, L = _pa_chunk_rows(i_n, j, cu, T, CT, VARLEN)
    o_h = i_hb * BH + tl.arange(0, BH)
    m_h = o_h < H
    i_nh = tl.cast(i_n, tl.int64) * H + o_h
    b_m, b_w = _state_in(m0, w0, i_nh, m_h, BH, HAS_H0)
    if (j * CT < L) | ((j == 0) & (L == 0)):
        b_m, b_w = _sums_carry(sm, sw, i_n, j, NCH, H, o_h, m_h, b_m, b_w, BP)
        mask = m_t[:, None] & m_h[None, :]
        ptr = rows[:, None] * H + o_h[None, :]
        mt, wt = _score_tile(s, lse, beta, ptr, mask, b_m, b_w)
        if (j + 1) * CT >= L:  # the sequence's last chunk: padded rows leave the pair unchanged
            last = (tl.arange(0, CT) == CT - 1)[:, None]
            tl.store(mT + i_nh, tl.max(tl.where(last, mt, float("-inf")), 0), mask=m_h)
            tl.store(wT + i_nh, tl.sum(tl.where(last, wt, 0.0), 0), mask=m_h)


@triton.jit
def _pa_gates(beta, r, m_t, o_d, m_d, i_d, H: tl.constexpr, V: tl.constexpr, BC: tl.constexpr,
              VEC: tl.constexpr, GROUP_HEAD: tl.constexpr):
    """``beta`` of every (channel, step) of the tile, float32: ``[BC, CT, 1]`` (one load per thread and step) when
    a thread's ``VEC`` channels share a head (``V % VEC == 0``), else ``[BC, CT, VEC]``."""
    if GROUP_HEAD:
        hd = (i_d * (BC * VEC) + tl.arange(0, BC) * VEC) // V
        ptr = beta + r[None, :, None] * H + hd[:, None, None]
        mask = m_t[None, :, None] & (hd < H)[:, None, None]
    else:
        ptr = beta + _rows(r) * H + _chans(o_d // V)
        mask = _rows(m_t) & _chans(m_d)
    return tl.load(ptr, mask=mask, other=0.0)


@triton.jit
def _pa_flat_ptrs(v, beta, o, i_n, j, i_d, L, o_d, H: tl.constexpr, V: tl.constexpr, CT: tl.constexpr,
                  BC: tl.constexpr, VEC: tl.constexpr, I64: tl.constexpr):
    """Pointers of a full tile (``FLAT``): one 64-bit base a thread and channel (``v``, ``o``) or a thread (``beta``),
    plus row offsets that are compile-time constants (``t * H * V``, ``t * H``), so every load and store takes an
    immediate offset instead of a 64-bit address computed per element (sm_90a SASS of the 32x128x2 bf16 tile, per
    thread: 214 LEA and 187 IMAD in the masked form)."""
    D: tl.constexpr = H * V
    row0 = i_n * L + j * CT
    if I64:
        row0 = tl.cast(row0, tl.int64)
    t = tl.arange(0, CT)
    hd = (i_d * (BC * VEC) + tl.arange(0, BC) * VEC) // V
    pv = (v + row0 * D + o_d)[:, None, :] + (t * D)[None, :, None]
    po = (o + row0 * D + o_d)[:, None, :] + (t * D)[None, :, None]
    pb = (beta + row0 * H + hd)[:, None, None] + (t * H)[None, :, None]
    return pv, po, pb


@triton.jit
def _pa_inputs(g_raw, v_raw, is_start, seq, o_d, m_d, u0, w0, H: tl.constexpr, V: tl.constexpr,
               HAS_H0: tl.constexpr):
    """The tile's gates ``a = 1 - beta`` and inputs ``b = beta v`` (float32), sequence starts as resets
    (``a := 0``, ``b := b + a u_0 / w_0``)."""
    D: tl.constexpr = H * V
    b = g_raw * v_raw.to(tl.float32)
    a = (1.0 - g_raw) + tl.zeros_like(b)
    if HAS_H0:
        st = _rows(is_start) & _chans(m_d)
        u = tl.load(u0 + _rows(seq) * D + _chans(o_d), mask=st, other=0.0)
        w = tl.load(w0 + _rows(seq) * H + _chans(o_d // V), mask=st, other=0.0)
        b += a * tl.where(w > 0, u / tl.where(w > 0, w, 1.0), 0.0)
    a = tl.where(_rows(is_start), 0.0, a)
    return a, b


@triton.jit
def _pa_final_u(hs, is_end, seq, rows, i_n, j, L, o_d, m_d, uT, wT, H: tl.constexpr, V: tl.constexpr, CT: tl.constexpr,
                IS_VARLEN: tl.constexpr, w_fin=None, INLINE: tl.constexpr = 0):
    """``u_T = o_T w_T`` from the rows that end a sequence. Dense: only the last chunk holds one, so its row is
    reduced to a ``[BC, VEC]`` vector there and ``w_T`` loaded per channel; a full-tile masked load of ``w_T`` (the
    packed form) is hoisted by the compiler above the look-back and held through it (sm_90a, 32x128x2 bf16 tile: 168
    registers a thread against 99 without it)."""
    D: tl.constexpr = H * V
    if IS_VARLEN:
        fin = _rows(is_end) & _chans(m_d)
        w = tl.load(wT + _rows(seq) * H + _chans(o_d // V), mask=fin, other=0.0)
        tl.store(uT + _rows(seq) * D + _chans(o_d), hs * w, mask=fin)
    else:
        if (j + 1) * CT >= L:
            h_end = tl.sum(tl.where(_rows(rows == L - 1 - j * CT), hs, 0.0), 1)
            if INLINE:  # w_T computed in this program (dense only)
                w = w_fin
            else:
                w = tl.load(wT + i_n * H + o_d // V, mask=m_d, other=0.0)
            tl.store(uT + i_n * D + o_d, h_end * w, mask=m_d)


@triton.jit
def _pa_inline_gates(s, sm, sw, lse, m0, w0, mT, wT, i_n, i_d, j, L, NCH, H: tl.constexpr, V: tl.constexpr,
                     CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, NHP: tl.constexpr, BP: tl.constexpr,
                     HAS_H0: tl.constexpr):
    """The inline score pass (``SEQLAB_PREFIX_ATTN_SCAN_LSE=inline``) of one value-scan tile: the ``NHP`` heads of
    channel block ``i_d`` (``BC * VEC`` channels inside one head, or whole heads) fold the initial state and the
    summaries of chunks ``0 .. j - 1`` into their carry, scan the chunk's ``[CT, NHP]`` scores from it
    (:func:`_lse_combine`), and the first program of each head stores ``lse`` (and, in the last chunk, ``(m_T, w_T)``),
    exactly as :func:`_pa_lse_chunk_kernel` does. Returns ``beta`` as the ``[BC, CT, 1]`` gate tile (one value a
    thread's ``VEC`` channels, which share a head) and each thread's ``w`` after the chunk's last row (``[BC, 1]``;
    ``w_T`` in the last chunk)."""
    BD: tl.constexpr = BC * VEC
    h0 = (i_d * BD) // V
    o_hp = tl.arange(0, NHP)
    hh = h0 + o_hp
    m_h = hh < H
    i_nh = tl.cast(i_n, tl.int64) * H + hh
    b_m, b_w = _state_in(m0, w0, i_nh, m_h, NHP, HAS_H0)
    b_m, b_w = _sums_carry(sm, sw, i_n, j, NCH, H, hh, m_h, b_m, b_w, BP)
    t = j * CT + tl.arange(0, CT)
    m_t = t < L
    ptr = (tl.cast(i_n, tl.int64) * L + t)[:, None] * H + hh[None, :]
    mask = m_t[:, None] & m_h[None, :]
    b_s = tl.load(s + ptr, mask=mask, other=float("-inf")).to(tl.float32)
    live = b_s > float("-inf")
    cm, cw = tl.associative_scan((b_s, live.to(tl.float32)), 0, _lse_combine)
    mt, wt = _lse_combine(b_m[None, :], b_w[None, :], cm, cw)
    lt = mt + tl.log(wt)
    bt = tl.where(live, exp_ftz(b_s - lt), 0.0)
    if (i_d * BD) % V == 0:  # the head's first program writes its lse and final pair
        tl.store(lse + ptr, lt, mask=mask)
        if (j + 1) * CT >= L:  # padded rows (s = -inf) leave the pair unchanged: the last row is the final pair
            last = (tl.arange(0, CT) == CT - 1)[:, None]
            tl.store(mT + i_nh, tl.max(tl.where(last, mt, float("-inf")), 0), mask=m_h)
            tl.store(wT + i_nh, tl.sum(tl.where(last, wt, 0.0), 0), mask=m_h)
    hl = (tl.arange(0, BC) * VEC) // V  # each thread's head, relative to h0
    pick = hl[:, None, None] == o_hp[None, None, :]
    g = tl.sum(tl.where(pick, bt[None, :, :], 0.0), 2)[:, :, None]
    # w_T of each thread's head (meaningful in the last chunk), for u_T = o_T w_T without reading wT back: another
    # program of the head may not have written it yet
    w_last = tl.sum(tl.where((tl.arange(0, CT) == CT - 1)[:, None], wt, 0.0), 0)
    w_thr = tl.sum(tl.where(hl[:, None] == o_hp[None, :], w_last[None, :], 0.0), 1)
    return g, w_thr[:, None]


@triton.jit
def _pa_tile_loads(v, beta, i_d, i_n, j, L, H: tl.constexpr, V: tl.constexpr, CT: tl.constexpr, BC: tl.constexpr,
                   VEC: tl.constexpr, GROUP_HEAD: tl.constexpr, I64: tl.constexpr, HINTS: tl.constexpr,
                   FLAT: tl.constexpr, INLINE: tl.constexpr, PACK: tl.constexpr = 0):
    """A value-scan tile's raw ``v`` (storage dtype; ``PACK``: ``[BC, CT]`` int32 words of channel pairs, see
    :func:`seqlab.kernels.scan1.triton_persist._tile_loads`) and its ``beta`` (a ``[1, 1, 1]`` zero under
    ``INLINE``, which computes the gates in :func:`_pa_tile`)."""
    D: tl.constexpr = H * V
    rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, False, CT, BC, VEC)
    if FLAT:
        pv, po, pb = _pa_flat_ptrs(v, beta, v, i_n, j, i_d, L, o_d, H, V, CT, BC, VEC, I64)
        if PACK:
            v_raw = _stream_load(_packed_ptrs(v, i_d, i_n, j, L, D, False, CT, BC, I64), None, None, HINTS)
        else:
            v_raw = _stream_load(pv, None, None, HINTS)
        if INLINE:
            g_raw = tl.zeros([1, 1, 1], tl.float32)
        else:
            g_raw = tl.load(pb)
    else:
        v_raw = _stream_load(v + offs, mask, 0.0, HINTS)
        if INLINE:
            g_raw = tl.zeros([1, 1, 1], tl.float32)
        else:
            g_raw = _pa_gates(beta, r, m_t, o_d, m_d, i_d, H, V, BC, VEC, GROUP_HEAD)
    return v_raw, g_raw


@triton.jit
def _pa_tile(
    v_raw, g_raw, i_d, i_n, j, beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, L, NCH,
    H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, NO_INCLUSIVE: tl.constexpr, EARLY: tl.constexpr,
    I64: tl.constexpr, TWO: tl.constexpr, OPAQUE: tl.constexpr, HINTS: tl.constexpr, FLAT: tl.constexpr,
    s, sm, sw, lse, m0, mT, INLINE: tl.constexpr, NHP: tl.constexpr, BP: tl.constexpr,
):
    """scan1's forward tile (``triton_scan._fwd_tile``) on ``[T, H * V]`` rows with the per-head gates of
    :func:`_pa_inputs`, from the loaded ``v_raw`` and ``g_raw`` (:func:`_pa_tile_loads`): publish the tile's
    aggregate, resolve the carry-in by the look-back, publish the inclusive state, scan again with the carry folded
    in (``TWO``) and store ``o`` (and ``u_T = o_T w_T``). ``INLINE``: the gates come from :func:`_pa_inline_gates`
    (scores ``s`` and chunk summaries ``sm``/``sw``; ``lse``, ``m_T`` and ``w_T`` written here) instead of a
    ``beta`` written by an earlier score pass."""
    D: tl.constexpr = H * V
    rows, pl, m_t, r, o_d, m_d, offs, mask = _fwd_coords(i_d, i_n, j, L, D, False, CT, BC, VEC)
    po = None
    if FLAT:
        pv, po, pb = _pa_flat_ptrs(v, beta, o, i_n, j, i_d, L, o_d, H, V, CT, BC, VEC, I64)
    if INLINE:  # beta from the scores here, the v loads in flight (dense, GROUP_HEAD: see _inline_ok)
        g_t, w_fin = _pa_inline_gates(s, sm, sw, lse, m0, w0, mT, wT, i_n, i_d, j, L, NCH, H, V, CT, BC, VEC, NHP,
                                      BP, HAS_H0)
    else:
        g_t = g_raw
    cid = i_n * NCH + j
    pre = tl.zeros([BC, VEC], tl.int64)
    if EARLY:
        pre = _early_poll(ws_ptr, cid, o_d, m_d, D, j > 0, 1)
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, False)
    a, b = _pa_inputs(g_t, v_raw, is_start, seq, o_d, m_d, u0, w0, H, V, HAS_H0)
    ca, cb = tl.associative_scan((a, b), 1, _combine)
    h_in = _link(ca, cb, is_start, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT, 1, NO_INCLUSIVE, EARLY)
    if TWO:
        a2, b2 = _pa_inputs(_opaque(g_t, OPAQUE), _opaque(v_raw, OPAQUE), is_start, seq, o_d, m_d, u0, w0,
                            H, V, HAS_H0)
        b2 += tl.where(_rows(rows == 0), a2 * _chans(h_in), 0.0)
        _, hs = tl.associative_scan((a2, b2), 1, _combine)
    else:
        hs = ca * _chans(h_in) + cb
    _store_tile(o, po, hs, r, o_d, offs, mask, D, OPAQUE, HINTS, FLAT)
    if STORE_FINAL:
        if INLINE:
            _pa_final_u(hs, is_end, seq, rows, i_n, j, L, o_d, m_d, uT, wT, H, V, CT, IS_VARLEN, w_fin, INLINE)
        else:
            _pa_final_u(hs, is_end, seq, rows, i_n, j, L, o_d, m_d, uT, wT, H, V, CT, IS_VARLEN)


@triton.jit
def _pa_scan_fwd_kernel(
    beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, NSEQ, NCH, nD,
    H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, GROUP_HEAD: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
    TICKET: tl.constexpr, EARLY: tl.constexpr, I64: tl.constexpr, TWO: tl.constexpr, OPAQUE: tl.constexpr,
    HINTS: tl.constexpr = 0, FLAT: tl.constexpr = 0,
    s=None, sm=None, sw=None, lse=None, m0=None, mT=None, INLINE: tl.constexpr = 0, NHP: tl.constexpr = 1,
    BP: tl.constexpr = 64,
):
    """One value-scan tile a program (:func:`_pa_tile_loads`, then :func:`_pa_tile`)."""
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, False, TICKET, I64)
    v_raw, g_raw = _pa_tile_loads(v, beta, i_d, i_n, j, L, H, V, CT, BC, VEC, GROUP_HEAD, I64, HINTS, FLAT, INLINE)
    _pa_tile(v_raw, g_raw, i_d, i_n, j, beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, L, NCH,
             H, V, HAS_H0, STORE_FINAL, IS_VARLEN, CT, BC, VEC, NO_INCLUSIVE, EARLY, I64, TWO, OPAQUE, HINTS, FLAT,
             s, sm, sw, lse, m0, mT, INLINE, NHP, BP)


def _lse_tile(T: int, H: int) -> tuple[int, int, int]:
    """``(BT, BH, num_warps)`` of the score pass: whole sequences of up to 4,096 steps in one tile (one round trip
    to memory per program instead of a walk), at most 4,096 scores a program (sm_90a ``ptxas -v``, 8 warps:
    4096 x 1 186 registers a thread, 2048 x 2 195, 4096 x 2 spills)."""
    if interpret_mode():
        return 16, min(4, next_pow2(H)), 1
    bt = max(16, min(4096, next_pow2(max(T, 1))))
    bh = max(1, min(next_pow2(H), 4096 // bt))
    return bt, bh, 8 if bt * bh >= 2048 else 4


def _lse_form() -> str:
    """``SEQLAB_PREFIX_ATTN_SCAN_LSE``: ``chunks`` (default: :func:`_pa_lse_sum_kernel` then
    :func:`_pa_lse_chunk_kernel`, every chunk in parallel), ``walk`` (:func:`_pa_lse_kernel`, one program per
    sequence and head block; 34 us of the 95 us forward on an H200 at B4 T4096 H16, docs/results.md) or ``inline``
    (opt-in, untimed: the summaries kernel also fills the look-back workspace, and each value-scan tile folds the
    summaries and scans its own scores, :func:`_pa_inline_gates`; two launches instead of four. Where
    :func:`_inline_ok` refuses a shape it runs ``chunks``)."""
    form = getenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", "chunks")
    if form not in ("chunks", "walk", "inline"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_SCAN_LSE must be 'chunks', 'walk' or 'inline', got {form!r}")
    return form


INLINE_MAX_CHUNKS = 512  # a tile folds up to this many predecessor summaries (8 bytes each) from L2


def _inline_ok(varlen: bool, V: int, bd: int, vec: int, nch: int) -> bool:
    """Whether the inline score pass applies: dense input (the summaries are per sequence, the value scan's varlen
    chunks span the packed axis), a thread's channels in one head (``V % VEC == 0``), a channel block inside one
    head or made of whole heads (``V % BD == 0`` or ``BD % V == 0``, at most 16 heads), and at most
    :data:`INLINE_MAX_CHUNKS` chunks a sequence (each tile reads all its predecessors' summaries, so the reads grow
    with the square of ``T``)."""
    whole = (V % bd == 0) or (bd % V == 0 and bd // V <= 16)
    return not varlen and V % vec == 0 and whole and nch <= INLINE_MAX_CHUNKS


def _lse_chunk_tile(H: int, backward: bool = False) -> tuple[int, int, int]:
    """``(CT, BH, num_warps)`` of the chunked score passes, up to 16 heads a tile: forward 32 steps, one warp;
    backward (``triton_lin_bwd``'s ``ds`` pass) 128 steps, 4 warps. ``SEQLAB_PREFIX_ATTN_LSE_TILE=CT,BH,W`` (powers
    of two) pins both, for sweeps.

    H200, B4 T4096 H16 (``bash benchmarks/pending_gpu.sh $OUT eleven``, device us of the chunk kernel, forward /
    backward): 128,16,4 12.2 / 5.1; 64,16,2 10.1 / 6.1; 32,16,1 7.1 / 7.7."""
    env = getenv("SEQLAB_PREFIX_ATTN_LSE_TILE")
    if not env and interpret_mode():
        return 16, min(4, next_pow2(H)), 1
    if env:
        try:
            ct, bh, w = (int(x) for x in env.split(","))
        except ValueError:
            raise ValueError(f"SEQLAB_PREFIX_ATTN_LSE_TILE must be CT,BH,W (three integers), got {env!r}") from None
        if any(x <= 0 or x & (x - 1) for x in (ct, bh, w)) or ct < 16:
            raise ValueError(f"SEQLAB_PREFIX_ATTN_LSE_TILE={env!r}: CT, BH and W must be powers of two, CT >= 16")
        return ct, bh, w
    bh = min(16, next_pow2(H))
    if backward:
        return max(16, 2048 // bh), bh, 4
    return max(32, 512 // bh), bh, 1


def _score_pass(s, lse, beta, m0, w0, mT, wT, cu_seqlens, N, T, H) -> None:
    """``lse``, ``beta`` and the final ``(m_T, w_T)`` (see :func:`_lse_form`)."""
    varlen = cu_seqlens is not None
    if _lse_form() == "walk":
        bt, bh, lw = _lse_tile(T, H)
        _pa_lse_kernel[(N, cdiv(H, bh))](s, lse, beta, m0, w0, mT, wT, cu_seqlens, T, H=H, BT=bt, BH=bh,
                                         HAS_H0=m0 is not None, VARLEN=varlen, num_warps=lw)
        return
    ct, bh, w = _lse_chunk_tile(H)
    nch = max(1, cdiv(T, ct))  # chunks of the longest possible sequence (varlen: of the whole packed axis)
    sm = torch.empty(N, nch, H, device=s.device, dtype=torch.float32)
    sw = torch.empty_like(sm)
    grid = (nch, N, cdiv(H, bh))
    _pa_lse_sum_kernel[grid](s, sm, sw, cu_seqlens, T, nch, sm, 0, H=H, CT=ct, BH=bh, VARLEN=varlen, num_warps=w)
    _pa_lse_chunk_kernel[grid](s, sm, sw, lse, beta, m0, w0, mT, wT, cu_seqlens, T, nch, H=H, CT=ct, BH=bh,
                               BP=min(64, next_pow2(nch)) if not interpret_mode() else 4,
                               HAS_H0=m0 is not None, VARLEN=varlen, num_warps=w)


def _parse_cfg(name: str, env: str) -> tuple[int, int, int]:
    """``CT,BD,W`` from environment variable ``name``: powers of two, ``BD`` a multiple of ``32 * W``."""
    try:
        ct, bd, w = (int(x) for x in env.split(","))
    except ValueError:
        raise ValueError(f"{name} must be CT,BD,W (three integers), got {env!r}") from None
    if any(x <= 0 or x & (x - 1) for x in (ct, bd, w)) or bd % (32 * w):
        raise ValueError(f"{name}={env!r}: CT, BD and W must be powers of two with BD a multiple of 32 * W")
    return ct, bd, w


def _scan_config(dtype: torch.dtype, D: int, T: int) -> tuple[int, int, int]:
    """``(CT, BD, num_warps)`` of the value scan: ``SEQLAB_PREFIX_ATTN_SCAN_CFG=CT,BD,W`` (sweeps), else scan1's
    forward tile for the ``[T, H * V]`` rows (:func:`seqlab.kernels.scan1.triton_launch._config`)."""
    env = getenv("SEQLAB_PREFIX_ATTN_SCAN_CFG")
    return _parse_cfg("SEQLAB_PREFIX_ATTN_SCAN_CFG", env) if env else _config(dtype, D, T)


def _flat(varlen: bool, T: int, D: int, ct: int, bd: int, group_head: bool) -> bool:
    """Whether the value scan takes the ``FLAT`` tile (:func:`_pa_flat_ptrs`: no masks, immediate row offsets):
    dense input whose tiles are all full (``T % CT == 0``, ``H * V % BD == 0``) with a thread's channels in one head.
    ``SEQLAB_PREFIX_ATTN_FLAT=0`` turns it off (benchmarks, tests)."""
    v = getenv("SEQLAB_PREFIX_ATTN_FLAT", "1")
    if v not in ("0", "1"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_FLAT must be 0 or 1, got {v!r}")
    return v == "1" and not varlen and T % ct == 0 and D % bd == 0 and group_head


def prefix_attention_fwd_scan(s, v, m0, u0, w0, cu_seqlens):
    """Forward as a score pass and scan1's linear scan over the values (module docstring). Returns
    ``(o, m_T, u_T, w_T, lse)`` like :func:`seqlab.kernels.prefix_attention.triton_scan.prefix_attention_fwd`."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    o, lse, mT, uT, wT = _fwd_outputs(v, N)
    if T == 0:  # no steps: every sequence keeps its initial state
        _keep_initial(m0, u0, w0, mT, uT, wT)
        return o, mT, uT, wT, lse
    if cu_seqlens is not None:  # empty sequences have no last step to write u_T: they keep the initial state
        uT.copy_(u0) if u0 is not None else uT.zero_()
    varlen = cu_seqlens is not None
    walk = walk_config(v.dtype, varlen)
    if fused_walk_ok(walk, V):  # opt-in: score pass and value scan in one walk
        fused_walk_forward(walk, s.contiguous(), v, m0, u0, w0, o, lse, mT, uT, wT, cu_seqlens)
        return o, mT, uT, wT, lse
    D = H * V
    ct, bd, warps = _scan_config(v.dtype, D, T)
    bc, vec = _lanes(bd, warps)
    s = s.contiguous()
    inline = (walk is None and _lse_form() == "inline"
              and _inline_ok(varlen, V, bd, vec, cdiv(max(T, 1), ct)))
    beta = sm = sw = None
    if inline:  # summaries of the value scan's chunks, and the workspace fill, in one launch
        sm = torch.empty(N, cdiv(T, ct), H, device=s.device, dtype=torch.float32)
        sw = torch.empty_like(sm)
    else:
        beta = torch.empty_like(lse)
        _score_pass(s, lse, beta, m0, w0, mT, wT, cu_seqlens, N, T, H)
        if walk is not None and not varlen:  # opt-in: the value scan as one walking program per sequence and block
            walk_value_scan(walk, beta, v, u0, w0, o, uT, wT, m0 is not None)
            return o, mT, uT, wT, lse
    persist = _persist("SEQLAB_PREFIX_ATTN_SCAN_PERSIST")
    ticket, early = _flag("TICKET", False) or persist > 0, _flag("EARLY_POLL", True)
    rows = v.view(B, T, D)
    nseq, L, nch, nd, seq_idx, ws = _geometry(rows, cu_seqlens, ct, bd, counter=ticket, fill=not inline)
    if inline:
        sbh = min(16, next_pow2(H))
        _pa_lse_sum_kernel[(nch, N, cdiv(H, sbh))](s, sm, sw, None, T, nch, ws, D, H=H, CT=ct, BH=sbh, VARLEN=False,
                                                   FILL=1, V=V, FB=min(1024, next_pow2(sbh * V)), num_warps=4)
    two, opaque = _phases()
    extra = {}
    if inline:
        extra = dict(s=s, sm=sm, sw=sw, lse=lse, m0=m0, mT=mT, INLINE=1, NHP=max(1, bd // V),
                     BP=64 if not interpret_mode() else 4)
    flat = _flat(varlen, T, D, ct, bd, V % vec == 0)
    args = (beta if beta is not None else lse, v, u0, w0, o, uT, wT, seq_idx, cu_seqlens, ws, ws[-2:], L, nseq, nch,
            nd)
    common = dict(H=H, V=V, HAS_H0=m0 is not None, STORE_FINAL=True, IS_VARLEN=varlen, CT=ct, BC=bc, VEC=vec,
                  GROUP_HEAD=V % vec == 0, NO_INCLUSIVE=_lookback_test(), EARLY=early, I64=_i64(ws, v), TWO=two,
                  OPAQUE=opaque, HINTS=_hints(v.dtype), FLAT=flat, num_warps=warps, **extra,
                  **_regcap("SEQLAB_PREFIX_ATTN_SCAN_MAXNREG"))
    if persist:  # opt-in: persistent programs prefetching their next tile (triton_lin_persist)
        from seqlab.kernels.prefix_attention.triton_lin_persist import _pa_scan_fwd_persist_kernel

        nt = nseq * nch * nd
        _pa_scan_fwd_persist_kernel[(min(nt, persist * _sm_count(v.device)),)](
            *args, nt, PACK=_packable(flat, vec, v), **common)
    else:
        _pa_scan_fwd_kernel[(nseq * nch * nd,)](*args, TICKET=ticket, **common)
    return o, mT, uT, wT, lse
