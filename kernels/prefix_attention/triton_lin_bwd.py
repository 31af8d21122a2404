"""Backward of the scan form (SEQLAB_PREFIX_ATTN_BWD=scan). With g_t the gradient reaching o_t through the recurrence
o_t = (1 - beta_t) o_{t-1} + beta_t v_t (a reverse linear scan, scan1's backward):

    g_t = do'_t + (1 - beta_{t+1}) g_{t+1},   do'_T = do_T + w_T du_T at a sequence's last step
    dv_t = beta_t g_t,   dbeta_t = g_t . (v_t - o_{t-1})      (o_{-1} = u_0 / w_0, or 0)

and through beta_t = exp(s_t - lse_t), lse_t = logcumsumexp(s)_t (a reverse scalar scan with the same factors,
exp(lse_t - lse_{t+1}) = 1 - beta_{t+1}):

    Y_t = beta_t dbeta_t + exp(lse_t - lse_{t+1}) Y_{t+1},   Y past the end = -dlse_T = -w_T (du_T . o_T + dw_T)
    ds_t = beta_t (dbeta_t - Y_t)
    du_0 = exp(m_0 - lse_0) g_0,   dw_0 = -exp(m_0 - lse_0) (g_0 . o_{-1} + Y_0)

(the initial state is a virtual first step with score m_0 + log w_0 and value u_0 / w_0; u_T = w_T o_T and
w_T = exp(lse_T - m_T) give the final-state terms). Launches: beta from (s, lse); the value scan (dv, and dbeta
summed over each head's channels); the scalar pass as chunk summaries plus one program per chunk that folds in
its successors' summaries (every factor exp(lse_a - lse_b) with a <= b, so <= 1).

Forward: :mod:`seqlab.kernels.prefix_attention.triton_lin`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode, next_pow2
from seqlab.kernels.triton_math import exp_ftz
from seqlab.kernels.prefix_attention.triton_lin import (
    _lse_chunk_tile,
    _pa_chunk_rows,
    _pa_gates,
    _parse_cfg,
)
from seqlab.kernels.prefix_attention.triton_scan import _lookback_test, _seq_span, prefix_attention_bwd
from seqlab.kernels.scan1.triton_launch import _bwd_regcap, _config, _flag, _geometry, _i64, _lanes
from seqlab.kernels.scan1.triton_scan import (
    _bwd_coords,
    _chans,
    _combine,
    _early_poll,
    _link,
    _rows,
    _seq_flags,
    _ticket,
)


@triton.jit
def _pa_beta_kernel(s, lse, beta, n, BLOCK: tl.constexpr):
    """``beta = exp(s - lse)`` (0 where ``s = -inf``) over ``n`` elements."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    b_s = tl.load(s + o, mask=m, other=float("-inf")).to(tl.float32)
    b_l = tl.load(lse + o, mask=m, other=0.0)
    tl.store(beta + o, tl.where(b_s > float("-inf"), exp_ftz(b_s - b_l), 0.0), mask=m)


@triton.jit
def _pa_exp_diff(a, b):
    """``exp(a - b)`` for ``a <= b`` with ``-inf - -inf`` taken as 0 (an empty prefix contributes nothing)."""
    return tl.where(a == float("-inf"), 0.0, exp_ftz(a - b))


@triton.jit
def _pa_scan_bwd_kernel(
    beta, v, o, do, u0, w0, duT, lse, mT, dv, dbeta, g0, seq_ptr, cu_ptr, ws_ptr, cnt_ptr, L, NSEQ, NCH, nD,
    H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr, IS_VARLEN: tl.constexpr, CT: tl.constexpr,
    BC: tl.constexpr, VEC: tl.constexpr, GROUP_HEAD: tl.constexpr, HEAD_TILE: tl.constexpr,
    NO_INCLUSIVE: tl.constexpr, TICKET: tl.constexpr, EARLY: tl.constexpr, I64: tl.constexpr,
):
    """scan1's backward tile (``triton_scan._bwd_tile``: reverse scan, aggregate, look-back to later chunks) on
    ``g_t = do'_t + (1 - beta_{t+1}) g_{t+1}``; stores ``dv = beta g``, adds each row's ``g . (v - o_{t-1})`` per
    head into ``dbeta`` (one atomic a row when the tile lies inside one head, ``HEAD_TILE``; else one a channel)
    and ``g`` at sequence starts into ``g0``."""
    D: tl.constexpr = H * V
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, True, TICKET, I64)
    NR = NSEQ * L
    rows, pl, m_t, r, r_next, r_prev, o_d, m_d, offs, mask = _bwd_coords(i_d, i_n, j, L, D, False, CT, BC, VEC)
    do_raw = tl.load(do + offs, mask=mask, other=0.0)
    gb_next = _pa_gates(beta, r_next, m_t & (r_next < NR), o_d, m_d, i_d, H, V, BC, VEC, GROUP_HEAD)
    pre = tl.zeros([BC, VEC], tl.int64)
    if EARLY:
        pre = _early_poll(ws_ptr, i_n * NCH + j, o_d, m_d, D, j < NCH - 1, -1)
    seq, is_start, is_end = _seq_flags(r, m_t, pl, L, seq_ptr, cu_ptr, i_n, IS_VARLEN, False)
    g_do = do_raw.to(tl.float32)
    hd_e = _chans(o_d // V)
    has_reset = tl.max(is_end.to(tl.int32), axis=0)
    if has_reset == 1:  # a sequence ends in this tile: do' = do + w_T du_T there (loads only in such tiles)
        fin = _rows(is_end) & _chans(m_d)
        l_end = tl.load(lse + _rows(r) * H + hd_e, mask=fin, other=float("-inf"))
        m_end = tl.load(mT + _rows(seq) * H + hd_e, mask=fin, other=0.0)
        du = tl.load(duT + _rows(seq) * D + _chans(o_d), mask=fin, other=0.0)
        g_do += tl.where(fin, _pa_exp_diff(l_end, m_end) * du, 0.0)
    m_next = _rows(m_t & (is_end == 0)) & _chans(m_d)
    gate = tl.where(m_next, 1.0 - gb_next, tl.where(mask, 0.0, 1.0))
    cid = i_n * NCH + j
    ca, cb = tl.associative_scan((gate, g_do), 1, _combine)
    g_in = _link(ca, cb, is_end, rows, j, cid, o_d, m_d, ws_ptr, pre, D, NCH, CT, -1, NO_INCLUSIVE, EARLY)
    g = ca * _chans(g_in) + cb
    b_here = _pa_gates(beta, r, m_t, o_d, m_d, i_d, H, V, BC, VEC, GROUP_HEAD)
    tl.store(dv + offs, (b_here * g).to(dv.dtype.element_ty), mask=mask)
    prev = mask & _rows((r_prev >= 0) & (is_start == 0))
    op = tl.load(o + _rows(r_prev) * D + _chans(o_d), mask=prev, other=0.0).to(tl.float32)
    if HAS_H0:
        if tl.max(is_start.to(tl.int32), axis=0) == 1:  # o_{-1} = u_0 / w_0 at sequence starts, g_0 stored
            st = _rows(is_start) & _chans(m_d)
            u = tl.load(u0 + _rows(seq) * D + _chans(o_d), mask=st, other=0.0)
            w = tl.load(w0 + _rows(seq) * H + hd_e, mask=st, other=0.0)
            op += tl.where(w > 0, u / tl.where(w > 0, w, 1.0), 0.0)
            tl.store(g0 + _rows(seq) * D + _chans(o_d), g, mask=st)
    e = g * (tl.load(v + offs, mask=mask, other=0.0).to(tl.float32) - op)
    if HEAD_TILE:  # the tile's channels all belong to head (first channel) // V
        part = tl.sum(tl.sum(e, axis=2), axis=0)
        tl.atomic_add(dbeta + r * H + (i_d * (BC * VEC)) // V, part, mask=m_t, sem="relaxed")
    else:
        tl.atomic_add(dbeta + _rows(r) * H + hd_e, e, mask=mask, sem="relaxed")


@triton.jit
def _pa_ds_sum_kernel(beta, dbeta, lse, ssum, cu, T, NCH, H: tl.constexpr, CT: tl.constexpr, BH: tl.constexpr,
                      VARLEN: tl.constexpr):
    """Chunk summaries of the scalar pass: ``S_k = sum_{t in k} exp(lse_f - lse_t) beta_t dbeta_t`` (``f`` the
    chunk's first step) into ``ssum [N, NCH, H]``."""
    j, i_n, i_hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows, m_t, L = _pa_chunk_rows(i_n, j, cu, T, CT, VARLEN)
    if j * CT < L:
        o_h = i_hb * BH + tl.arange(0, BH)
        m_h = o_h < H
        mask = m_t[:, None] & m_h[None, :]
        ptr = rows[:, None] * H + o_h[None, :]
        p = tl.load(beta + ptr, mask=mask, other=0.0) * tl.load(dbeta + ptr, mask=mask, other=0.0)
        lt = tl.load(lse + ptr, mask=mask, other=float("-inf"))
        lf = tl.load(lse + tl.min(rows, 0) * H + o_h, mask=m_h, other=float("-inf"))
        f = tl.where(mask & (p != 0.0), _pa_exp_diff(lf[None, :], lt), 0.0)
        tl.store(ssum + (tl.cast(i_n, tl.int64) * NCH + j) * H + o_h, tl.sum(f * p, 0), mask=m_h)


@triton.jit
def _pa_ds_chunk_kernel(beta, dbeta, lse, ssum, o, duT, dwT, mT, ds, y0, cu, T, NCH, H: tl.constexpr,
                        V: tl.constexpr, CT: tl.constexpr, BH: tl.constexpr, BP: tl.constexpr, BV: tl.constexpr,
                        HAS_H0: tl.constexpr, VARLEN: tl.constexpr):
    """Chunk ``j``'s carry from its successors' summaries and the final-state term, then its own reverse scan of
    ``Y`` and ``ds = beta (dbeta - Y)``; ``Y_0`` of each sequence into ``y0`` (``HAS_H0``)."""
    j, i_n, i_hb = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bos, L = _seq_span(i_n, cu, T, VARLEN)
    if j * CT < L:
        o_h = i_hb * BH + tl.arange(0, BH)
        m_h = o_h < H
        i_nh = tl.cast(i_n, tl.int64) * H + o_h
        k = tl.arange(0, CT)
        t = j * CT + CT - 1 - k  # descending: tile row 0 is the chunk's last step
        valid = t < L
        rows = bos + t
        e_row = bos + tl.minimum(j * CT + CT - 1, L - 1)  # the chunk's last step in the sequence
        l_e = tl.load(lse + e_row * H + o_h, mask=m_h, other=float("-inf"))
        # final-state term: -dlse_T = -w_T (du_T . o_T + dw_T), carried back to the chunk's last step
        last_row = bos + L - 1
        l_T = tl.load(lse + last_row * H + o_h, mask=m_h, other=float("-inf"))
        w_T = _pa_exp_diff(l_T, tl.load(mT + i_nh, mask=m_h, other=0.0))
        o_v = tl.arange(0, BV)
        mv = m_h[:, None] & (o_v < V)[None, :]
        duo = tl.sum(tl.load(duT + i_nh[:, None] * V + o_v[None, :], mask=mv, other=0.0)
                     * tl.load(o + (last_row * H + o_h)[:, None] * V + o_v[None, :], mask=mv, other=0.0).to(tl.float32),
                     1)
        y_end = -w_T * (duo + tl.load(dwT + i_nh, mask=m_h, other=0.0))
        carry = _pa_exp_diff(l_e, l_T) * y_end
        base = tl.cast(i_n, tl.int64) * NCH * H
        o_p = tl.arange(0, BP)
        nc = tl.cdiv(L, CT)
        for k0 in tl.range(j + 1, nc, BP):
            kk = k0 + o_p
            mk = (kk < nc)[:, None] & m_h[None, :]
            sk = tl.load(ssum + base + kk[:, None] * H + o_h[None, :], mask=mk, other=0.0)
            lf = tl.load(lse + (bos + kk * CT)[:, None] * H + o_h[None, :], mask=mk, other=float("-inf"))
            carry += tl.sum(tl.where(mk & (sk != 0.0), _pa_exp_diff(l_e[None, :], lf), 0.0) * sk, 0)
        mask = valid[:, None] & m_h[None, :]
        ptr = rows[:, None] * H + o_h[None, :]
        b = tl.load(beta + ptr, mask=mask, other=0.0)
        db = tl.load(dbeta + ptr, mask=mask, other=0.0)
        lt = tl.load(lse + ptr, mask=mask, other=float("-inf"))
        nxt = mask & ((t + 1 < L) & (k > 0))[:, None]
        ln = tl.load(lse + ptr + H, mask=nxt, other=float("-inf"))
        gate = tl.where(nxt, _pa_exp_diff(lt, ln), 1.0)
        ca, cb = tl.associative_scan((gate, b * db), 0, _combine)
        y = ca * carry[None, :] + cb
        tl.store(ds + ptr, (b * (db - y)).to(ds.dtype.element_ty), mask=mask)
        if HAS_H0:
            tl.store(y0 + i_nh[None, :] + 0 * ptr, y, mask=mask & (t == 0)[:, None])


def _bwd_form() -> str:
    """``SEQLAB_PREFIX_ATTN_BWD``: ``scan`` (default, :func:`prefix_attention_bwd_scan`: scan1's reverse scan over
    the values and a chunked pass over the scores) or ``walk`` (``triton_scan._pa_bwd_kernel``: one program per
    sequence, head and value block walking the chunks right to left). H200, B4 T4096 H16 V128 bf16 (``bash
    benchmarks/pending_gpu.sh $OUT ten``, device us): scan about 175 (value scan 158) against walk 671-678."""
    form = getenv("SEQLAB_PREFIX_ATTN_BWD", "scan")
    if form not in ("walk", "scan"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_BWD must be 'walk' or 'scan', got {form!r}")
    return form


def _scan_bwd_config(dtype: torch.dtype, D: int, T: int) -> tuple[int, int, int]:
    """``(CT, BD, num_warps)`` of the backward value scan: ``SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG=CT,BD,W``, else scan1's
    backward tile."""
    env = getenv("SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG")
    return _parse_cfg("SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG", env) if env else _config(dtype, D, T, backward=True)


def prefix_attention_bwd_scan(s, v, o, lse, m0, u0, w0, mT, cu_seqlens, do, duT, dwT):
    """Backward of prefix attention by scan1's reverse scan over the values and a chunked scalar pass over the
    scores (formulas in the module docstring). Returns ``(ds, dv, du0, dw0)`` like
    :func:`seqlab.kernels.prefix_attention.triton_scan.prefix_attention_bwd`."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    if T == 0:
        return prefix_attention_bwd(s, v, o, lse, m0, mT, cu_seqlens, do, duT, dwT)
    dev, f32 = v.device, torch.float32
    varlen = cu_seqlens is not None
    has_h0 = m0 is not None
    s = s.contiguous()
    beta = torch.empty(B, T, H, device=dev, dtype=f32)
    n = beta.numel()
    _pa_beta_kernel[(cdiv(n, 1024),)](s, lse, beta, n, BLOCK=1024)
    dbeta = torch.zeros_like(beta)
    dv = torch.empty_like(v)
    D = H * V
    ct, bd, warps = _scan_bwd_config(v.dtype, D, T)
    bc, vec = _lanes(bd, warps)
    ticket, early = _flag("TICKET", False), _flag("EARLY_POLL", True)
    nseq, L, nch, nd, seq_idx, ws = _geometry(v.view(B, T, D), cu_seqlens, ct, bd, counter=ticket)
    g0 = torch.empty(N, D, device=dev, dtype=f32) if has_h0 else None
    _pa_scan_bwd_kernel[(nseq * nch * nd,)](
        beta, v, o, do, u0, w0, duT, lse, mT, dv, dbeta, g0, seq_idx, cu_seqlens, ws, ws[-2:], L, nseq, nch, nd,
        H=H, V=V, HAS_H0=has_h0, IS_VARLEN=varlen, CT=ct, BC=bc, VEC=vec, GROUP_HEAD=V % vec == 0,
        HEAD_TILE=V % bd == 0, NO_INCLUSIVE=_lookback_test(), TICKET=ticket, EARLY=early, I64=_i64(ws, v),
        num_warps=warps, **_bwd_regcap("SEQLAB_PREFIX_ATTN_SCAN_BWD_MAXNREG", v.dtype),
    )
    ctl, bh, w = _lse_chunk_tile(H, backward=True)
    nchl = max(1, cdiv(T, ctl))
    ssum = torch.empty(N, nchl, H, device=dev, dtype=f32)
    y0 = torch.empty(N, H, device=dev, dtype=f32) if has_h0 else None
    ds = torch.empty_like(s)
    grid = (nchl, N, cdiv(H, bh))
    _pa_ds_sum_kernel[grid](beta, dbeta, lse, ssum, cu_seqlens, T, nchl, H=H, CT=ctl, BH=bh, VARLEN=varlen,
                            num_warps=w)
    _pa_ds_chunk_kernel[grid](beta, dbeta, lse, ssum, o, duT, dwT, mT, ds, y0, cu_seqlens, T, nchl, H=H, V=V,
                              CT=ctl, BH=bh, BP=min(64, next_pow2(nchl)) if not interpret_mode() else 4,
                              BV=next_pow2(V), HAS_H0=has_h0, VARLEN=varlen, num_warps=w)
    if not has_h0:
        return ds, dv, None, None
    first = lse[:, 0] if not varlen else lse[0, cu_seqlens[:-1].long()]
    e0 = torch.where(m0 == float("-inf"), 0.0, torch.exp(m0 - first))
    g0 = g0.view(N, H, V)
    h0n = torch.where(w0[..., None] > 0, u0 / torch.where(w0 > 0, w0, 1.0)[..., None], 0.0)
    return ds, dv, e0[..., None] * g0, -e0 * ((g0 * h0n).sum(-1) + y0)
