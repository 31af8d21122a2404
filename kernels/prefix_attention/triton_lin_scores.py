"""Prefix attention's score pass for the scan forward (:mod:`seqlab.kernels.prefix_attention.triton_lin`): the
running ``(max, sum exp)`` of the scores, ``lse_t = m_t + log w_t``, ``beta_t = exp(s_t - lse_t)`` and the final
``(m_T, w_T)``, from the initial state when there is one.

Three forms (:func:`_lse_form`): ``chunks`` (:func:`_pa_lse_sum_kernel` summarises every chunk, then
:func:`_pa_lse_chunk_kernel` gives each chunk its carry from its predecessors' summaries and scans its scores, all
chunks at once), ``walk`` (:func:`_pa_lse_kernel`, one program a sequence and head block) and ``inline`` (the
summaries kernel also fills the value scan's look-back workspace, and each value-scan tile computes its own gates
with :func:`_pa_inline_gates`; the default where it applies). Every ``exp`` argument is ``<= 0``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode, next_pow2
from seqlab.kernels.prefix_attention.triton_scan import _lse_combine, _seq_span
from seqlab.kernels.triton_math import exp_ftz


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
    """``SEQLAB_PREFIX_ATTN_SCAN_LSE``: ``inline`` (default: the summaries kernel also fills the look-back
    workspace, and each value-scan tile folds the summaries and scans its own scores, :func:`_pa_inline_gates`; two
    launches instead of four. Where :func:`_inline_ok` refuses a shape it runs ``chunks``), ``chunks``
    (:func:`_pa_lse_sum_kernel` then :func:`_pa_lse_chunk_kernel`, every chunk in parallel) or ``walk``
    (:func:`_pa_lse_kernel`, one program per sequence and head block; 34 us of the 95 us forward on an H200 at B4
    T4096 H16, docs/results.md). H100, B4 T4096 H16 V128 bf16 (eighteenth session): the forward from CUDA graphs
    at 81.9% of copy bandwidth ``inline`` against 76.6% ``chunks`` on the default 64x128x2 value tiles."""
    form = getenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", "inline")
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


def _inline_bp() -> int:
    """Predecessor summaries an inline tile folds a trip (``SEQLAB_PREFIX_ATTN_INLINE_BP``, a power of two from 4 to
    1024; default 64, 4 under the interpreter so that tests take several trips). sm_90, 32x128x2 bf16 tile
    (``benchmarks/lookback_compile_counts.py``): 64 builds with 11 barriers a program, 32 with 4 (its reductions stay
    inside a warp) but twice the trips, each an L2 round trip; untimed."""
    env = getenv("SEQLAB_PREFIX_ATTN_INLINE_BP")
    if not env:
        return 4 if interpret_mode() else 64
    if not env.isdigit() or int(env) < 4 or int(env) > 1024 or int(env) & (int(env) - 1):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_INLINE_BP must be a power of two from 4 to 1024, got {env!r}")
    return int(env)


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
