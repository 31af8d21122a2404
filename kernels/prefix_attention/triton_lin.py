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

The score pass (:mod:`seqlab.kernels.prefix_attention.triton_lin_scores`) is ``inline`` by default where it applies
(dense input): the summaries kernel also fills the look-back workspace and each value-scan tile computes its own
``beta`` (``_pa_inline_gates``), so the forward is two launches. Elsewhere it is chunked (chunk summaries, then every
chunk at once), or, opt-in, one walk a sequence. The value scan's tile is :func:`_pa_tile`, run
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
from seqlab.kernels.prefix_attention.triton_lin_walk import (
    fused_walk_forward,
    fused_walk_ok,
    walk_config,
    walk_value_scan,
)
from seqlab.kernels.prefix_attention.triton_lin_scores import (  # noqa: F401 - re-exported for triton_lin_bwd, tests
    INLINE_MAX_CHUNKS,
    _inline_bp,
    _inline_ok,
    _lse_chunk_tile,
    _lse_form,
    _pa_chunk_rows,
    _pa_inline_gates,
    _pa_lse_sum_kernel,
    _score_pass,
)
from seqlab.kernels.prefix_attention.triton_scan import _fwd_outputs, _keep_initial, _lookback_test
from seqlab.kernels.scan1.triton_launch import (
    _config,
    _flag,
    _geometry,
    _hints,
    _i64,
    _lanes,
    _lookback_window,
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
    s, sm, sw, lse, m0, mT, INLINE: tl.constexpr, NHP: tl.constexpr, BP: tl.constexpr, LBW: tl.constexpr = 1,
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
    h_in = _link(ca, cb, is_start, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT, 1, NO_INCLUSIVE, EARLY, LBW)
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
    BP: tl.constexpr = 64, LBW: tl.constexpr = 1,
):
    """One value-scan tile a program (:func:`_pa_tile_loads`, then :func:`_pa_tile`); ``LBW``: the look-back window
    (``triton_scan._carry_in``, ``SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW``)."""
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, False, TICKET, I64)
    v_raw, g_raw = _pa_tile_loads(v, beta, i_d, i_n, j, L, H, V, CT, BC, VEC, GROUP_HEAD, I64, HINTS, FLAT, INLINE)
    _pa_tile(v_raw, g_raw, i_d, i_n, j, beta, v, u0, w0, o, uT, wT, seq_ptr, cu_ptr, ws_ptr, L, NCH,
             H, V, HAS_H0, STORE_FINAL, IS_VARLEN, CT, BC, VEC, NO_INCLUSIVE, EARLY, I64, TWO, OPAQUE, HINTS, FLAT,
             s, sm, sw, lse, m0, mT, INLINE, NHP, BP, LBW)


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
    forward tile for the ``[T, H * V]`` rows (:func:`seqlab.kernels.scan1.triton_launch._config`), with 64-step
    chunks for 16-bit values (up to ``T``; under the interpreter scan1's small tile).

    H100, B4 T4096 H16 V128 bf16, forward from CUDA graphs as a fraction of copy bandwidth (eighteenth session,
    ``bash benchmarks/pending_gpu.sh $OUT sixteen`` and ``pa_walk_sweep.py``, docs/results.md): 32x128x2 71.2-71.5%
    with the ``chunks`` score pass and 73.2% ``inline``; 64x128x2 76.6% ``chunks`` and 81.6-81.9% ``inline``
    (0.0573 ms against 0.0657); 64x64x1 ``inline`` 79.1%; 128x128x2 68.6%; 64x128x4 27.9%."""
    env = getenv("SEQLAB_PREFIX_ATTN_SCAN_CFG")
    if env:
        return _parse_cfg("SEQLAB_PREFIX_ATTN_SCAN_CFG", env)
    # scan1's float32 rule (at most 128 channels over two warps): scan1's own 16-bit forward tile (64x256x4 since the
    # nineteenth session) lost here on an H200: 66.2-67.0% of copy against 71.6% for 64x128x2 (docs/results.md)
    ct, bd, w = _config(torch.float32 if dtype.itemsize == 2 else dtype, D, T)
    if dtype.itemsize == 2 and not interpret_mode():
        ct = max(ct, min(64, next_pow2(max(T, 1))))
    return ct, bd, w


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
                     BP=_inline_bp())
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
        _pa_scan_fwd_kernel[(nseq * nch * nd,)](*args, TICKET=ticket,
                                                 LBW=_lookback_window("SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW"), **common)
    return o, mT, uT, wT, lse
