"""Triton kernels for prefix softmax attention with one query per head (Aaren, Feng et al. 2024).

Forward, ``SEQLAB_PREFIX_ATTN_FWD=fused`` (``_pa_fused_fwd_kernel``): one launch, one program per (value block, sequence x head)
walking its chunks left to right with the running (max, denominator, output) in registers; inside a chunk the
(max, denominator) pairs come from an associative scan over the scores (paper section 3.2: the triple
(max, numerator, denominator) combines associatively) and the output from the convex recurrence
``o_t = (1 - beta_t) o_{t-1} + beta_t v_t``, ``beta_t = exp(s_t - m_t) / w_t``, as a linear scan over the
tile. ``v`` is read once and ``o`` written once.

The default forward and backward are the scan forms of ``triton_lin`` / ``triton_lin_bwd`` (``_fwd_impl``).

Forward (``SEQLAB_PREFIX_ATTN_FWD=lookback``, ``_pa_lookback_fwd_kernel``; on an H200 at B4 T4096 H16
V128 bf16 its forward+backward took 0.883 ms against the fused form's 1.184 ms, docs/results.md): one launch of
independent programs,
one per (chunk, head, value block), bound by memory bandwidth rather than by a walk over the chunks: each
publishes its chunk's aggregate, takes the exclusive prefix over earlier chunks of its sequence by a decoupled
look-back (as ``seqlab.kernels.scan1``), and writes its outputs from in-chunk weights and one ``tl.dot``; no scan
over the values (the running max is a 1-D max scan over the chunk's scores, or a masked ``[BT, BT]`` max). The
weights come in two variants, picked per chunk at run time: ``exp(s_i - M_c)`` against the chunk's max, one
broadcast row with no ``[BT, BT]`` exp, when the chunk's first score is within 60 of its max (8 for float16
values), else ``exp(s_i - cm_t) <= 1`` against the chunk's own running max (``SEQLAB_PREFIX_ATTN_FAST=0``: always
the latter); both exact. ``v`` is read once and ``o`` written once.

Forward, ``SEQLAB_PREFIX_ATTN_FWD=chunked``: a two-pass chunked scan over chunks of ``BT = 64`` steps
(chunks summarised independently, then combined):

1. ``_pa_summary_kernel`` (all chunks in parallel): each chunk's own triple ``(max s, sum exp(s - max) v,
   sum exp(s - max))``.
2. ``_pa_carry_kernel`` (per sequence, over ``T / 64`` triples only): left-to-right combine, storing the triple
   entering every chunk and the final state.
3. ``_pa_out_kernel`` (all chunks in parallel): running max ``m_t = max(m_carry, cummax(s))``, weights
   ``P[t, i] = exp(s_i - m_t)`` (``i <= t``, all ``<= 1``), ``u_t = exp(m_carry - m_t) u_carry + P @ v``,
   ``w_t`` likewise with row sums, ``o_t = u_t / w_t``; ``lse_t = m_t + log w_t`` is saved for the backward.

The backward is one program per (sequence, head, value block) walking the chunks right to left.

Backward (derived here; ``lse`` is non-decreasing in t, so every factor below is ``<= 1``)::

    z_i = sum_{t>=i} exp(lse_i - lse_t) do_t  (+ exp(lse_i - m_T) du_T)
    y_i = sum_{t>=i} exp(lse_i - lse_t) (do_t . o_t)  (- exp(lse_i - m_T) dw_T)
    dv_i = exp(s_i - lse_i) z_i,    ds_i = exp(s_i - lse_i) (v_i . z_i - y_i)

computed by a right-to-left chunked scan; ``du_0 = exp(m_0 - lse_1) z_1`` and ``dw_0 = -exp(m_0 - lse_1) y_1``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode, next_pow2
from seqlab.kernels.triton_math import exp_ftz


@triton.jit
def _max_combine(a, b):
    return tl.maximum(a, b)


@triton.jit
def _chunk_bounds(i_c, cidx, cu, T, NTS, VARLEN: tl.constexpr, BT: tl.constexpr):
    """(first row of the chunk, rows left in its sequence from there, sequence index) of global chunk i_c."""
    if VARLEN:
        i_n = tl.load(cidx + i_c * 2).to(tl.int64)
        j = tl.load(cidx + i_c * 2 + 1).to(tl.int64)
        bos = tl.load(cu + i_n).to(tl.int64)
        L = tl.load(cu + i_n + 1).to(tl.int64) - bos
    else:
        i_n = tl.cast(i_c // NTS, tl.int64)
        j = tl.cast(i_c % NTS, tl.int64)
        bos = i_n * T
        L = tl.cast(T, tl.int64)
    return bos + j * BT, L - j * BT, i_n


@triton.jit
def _pa_summary_kernel(s, v, sm, su, sw, cidx, cu, T, NTS, H: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
                       BV: tl.constexpr, VARLEN: tl.constexpr):
    """Pass 1, all chunks in parallel: the chunk's own triple (max, sum exp(s - max) v, sum exp(s - max))."""
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    r0, left, _ = _chunk_bounds(i_c, cidx, cu, T, NTS, VARLEN, BT)
    o_t = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    mask_t, mask_v = o_t < left, o_v < V
    rows = r0 + o_t
    b_s = tl.load(s + rows * H + i_h, mask=mask_t, other=float("-inf")).to(tl.float32)
    b_m = tl.max(b_s, 0)
    b_p = tl.where(mask_t, exp_ftz(b_s - b_m), 0.0)
    b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_t[:, None] & mask_v[None, :],
                  other=0.0).to(tl.float32)
    c = tl.cast(i_c, tl.int64) * H + i_h
    tl.store(su + c * V + o_v, tl.sum(b_p[:, None] * b_v, 0), mask=mask_v)
    if i_v == 0:
        tl.store(sm + c, b_m)
        tl.store(sw + c, tl.sum(b_p, 0))


@triton.jit
def _pa_carry_kernel(sm, su, sw, cm, cuv, cw, m0, u0, w0, mT, uT, wT, coff, H: tl.constexpr, V: tl.constexpr,
                     BV: tl.constexpr, HAS_H0: tl.constexpr):
    """Pass 2, per sequence: combine the chunk triples left to right (only NT * V numbers); store the triple
    entering every chunk and the final state."""
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_nh = tl.cast(i_n, tl.int64) * H + i_h
    o_v = i_v * BV + tl.arange(0, BV)
    mask_v = o_v < V
    if HAS_H0:
        b_m = tl.load(m0 + i_nh)
        b_u = tl.load(u0 + i_nh * V + o_v, mask=mask_v, other=0.0)
        b_w = tl.load(w0 + i_nh)
    else:
        b_m = tl.full([], float("-inf"), tl.float32)
        b_u = tl.zeros([BV], dtype=tl.float32)
        b_w = tl.full([], 0.0, tl.float32)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    for c in range(c0, c1):
        p = c * H + i_h
        tl.store(cuv + p * V + o_v, b_u, mask=mask_v)
        if i_v == 0:
            tl.store(cm + p, b_m)
            tl.store(cw + p, b_w)
        b_mc = tl.load(sm + p)
        b_mn = tl.maximum(b_m, b_mc)
        b_a = exp_ftz(b_m - b_mn)
        b_b = exp_ftz(b_mc - b_mn)
        b_u = b_u * b_a + b_b * tl.load(su + p * V + o_v, mask=mask_v, other=0.0)
        b_w = b_w * b_a + b_b * tl.load(sw + p)
        b_m = b_mn
    if i_v == 0:
        tl.store(mT + i_nh, b_m)
        tl.store(wT + i_nh, b_w)
    tl.store(uT + i_nh * V + o_v, b_u, mask=mask_v)


@triton.jit
def _pa_out_kernel(s, v, o, lse, cm, cuv, cw, cidx, cu, T, NTS, H: tl.constexpr, V: tl.constexpr,
                   BT: tl.constexpr, BV: tl.constexpr, VARLEN: tl.constexpr, IEEE: tl.constexpr):
    """Pass 3, all chunks in parallel: outputs from the entering triple and the in-chunk prefix sums."""
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    r0, left, _ = _chunk_bounds(i_c, cidx, cu, T, NTS, VARLEN, BT)
    o_t = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    mask_t, mask_v = o_t < left, o_v < V
    rows = r0 + o_t
    p = tl.cast(i_c, tl.int64) * H + i_h
    b_m = tl.load(cm + p)
    b_u = tl.load(cuv + p * V + o_v, mask=mask_v, other=0.0)
    b_w = tl.load(cw + p)
    b_s = tl.load(s + rows * H + i_h, mask=mask_t, other=float("-inf")).to(tl.float32)
    b_mt = tl.maximum(tl.associative_scan(b_s, 0, _max_combine), b_m)  # [BT]
    causal = o_t[:, None] >= o_t[None, :]
    b_p = tl.where(causal, exp_ftz(b_s[None, :] - b_mt[:, None]), 0.0)  # [BT, BT]
    b_r = exp_ftz(b_m - b_mt)
    mask2 = mask_t[:, None] & mask_v[None, :]
    b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask2, other=0.0)
    if IEEE:
        b_pv = tl.dot(b_p, b_v.to(tl.float32), input_precision="ieee")
    else:
        b_pv = tl.dot(b_p, b_v.to(tl.float32))  # tf32: P <= 1 keeps more bits than a bf16 cast
    b_ut = b_r[:, None] * b_u[None, :] + b_pv
    b_wt = b_r * b_w + tl.sum(b_p, 1)
    tl.store(o + (rows[:, None] * H + i_h) * V + o_v[None, :], (b_ut / b_wt[:, None]).to(o.dtype.element_ty),
             mask=mask2)
    if i_v == 0:
        tl.store(lse + rows * H + i_h, b_mt + tl.log(b_wt), mask=mask_t)


@triton.jit
def _pa_bwd_kernel(s, v, o, lse, m0, mT, cu, do, duT, dwT, ds_part, dv, du0, dw0_part, T, NH, BTH,
                   H: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr,
                   HAS_H0: tl.constexpr, VARLEN: tl.constexpr, IEEE: tl.constexpr):
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    if VARLEN:
        bos = tl.load(cu + i_n).to(tl.int64)
        eos = tl.load(cu + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    L = eos - bos
    o_v = i_v * BV + tl.arange(0, BV)
    mask_v = o_v < V
    o_t = tl.arange(0, BT)
    b_lc = tl.load(mT + i_nh)
    b_z = tl.load(duT + i_nh * V + o_v, mask=mask_v, other=0.0)
    b_y = tl.where(i_v == 0, -tl.load(dwT + i_nh), 0.0)
    upper = o_t[:, None] <= o_t[None, :]
    NC = tl.cdiv(L, BT)
    for j in range(0, NC):
        start = (NC - 1 - j) * BT
        t = start + o_t
        mask_t = t < L
        rows = bos + t
        mask2 = mask_t[:, None] & mask_v[None, :]
        b_l = tl.load(lse + rows * H + i_h, mask=mask_t, other=0.0)
        b_s = tl.load(s + rows * H + i_h, mask=mask_t, other=0.0).to(tl.float32)
        ptr = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_do = tl.load(do + ptr, mask=mask2, other=0.0).to(tl.float32)
        b_o = tl.load(o + ptr, mask=mask2, other=0.0).to(tl.float32)
        b_v = tl.load(v + ptr, mask=mask2, other=0.0).to(tl.float32)
        b_delta = tl.sum(b_do * b_o, 1)  # [BT]
        b_q = tl.where(upper & mask_t[None, :], exp_ftz(b_l[:, None] - b_l[None, :]), 0.0)  # [BT(i), BT(t)]
        b_rc = exp_ftz(b_l - b_lc)
        if IEEE:
            b_zt = tl.dot(b_q, b_do, input_precision="ieee")
        else:
            b_zt = tl.dot(b_q, b_do)
        b_zt += b_rc[:, None] * b_z[None, :]
        b_yt = tl.sum(b_q * b_delta[None, :], 1) + b_rc * b_y
        b_e = exp_ftz(b_s - b_l)
        tl.store(dv + ptr, (b_e[:, None] * b_zt).to(dv.dtype.element_ty), mask=mask2)
        tl.store(ds_part + tl.cast(i_v, tl.int64) * BTH + rows * H + i_h,
                 b_e * (tl.sum(b_v * b_zt, 1) - b_yt), mask=mask_t)
        sel = o_t == 0
        b_lc = tl.sum(tl.where(sel, b_l, 0.0), 0)
        b_z = tl.sum(tl.where(sel[:, None], b_zt, 0.0), 0)
        b_y = tl.sum(tl.where(sel, b_yt, 0.0), 0)
    if HAS_H0:
        b_a = exp_ftz(tl.load(m0 + i_nh) - b_lc)
        tl.store(du0 + i_nh * V + o_v, b_a * b_z, mask=mask_v)
        tl.store(dw0_part + i_v * NH + i_nh, -b_a * b_y)


def _cfg(V: int) -> tuple[int, int]:
    BT = 64
    BV = min(16, max(16, next_pow2(V)))  # many programs: the chunk loop is latency-bound
    return BT, BV


def _chunk_table(B, T, cu_seqlens, BT, device):
    """(number of chunks, chunks per dense sequence, [NT, 2] (sequence, chunk) table or None, chunk offsets)."""
    if cu_seqlens is None:
        nts = cdiv(T, BT)
        return B * nts, nts, None, torch.arange(B + 1, device=device, dtype=torch.int32) * nts
    lens = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
    counts = [cdiv(L, BT) for L in lens]
    table = [(n, j) for n, c in enumerate(counts) for j in range(c)]
    offs = [0]
    for c in counts:
        offs.append(offs[-1] + c)
    cidx = torch.tensor(table or [(0, 0)], device=device, dtype=torch.int32)
    return len(table), 1, cidx, torch.tensor(offs, device=device, dtype=torch.int32)


def _fwd_impl() -> str:
    """``SEQLAB_PREFIX_ATTN_FWD``: ``scan`` (default, ``triton_lin.prefix_attention_fwd_scan``: a chunked pass over
    the scores, then scan1's single-pass linear scan over the values), ``lookback``
    (:func:`prefix_attention_fwd_lookback`, one launch of independent chunk programs joined by a decoupled look-back
    over ``(m, u, w)``, one pass over the values), ``fused`` (:func:`prefix_attention_fwd_fused`, one launch walking
    the chunks, one pass) or ``chunked`` (the three-launch form of :func:`prefix_attention_fwd`).

    H200, B4 T4096 H16 V128 bf16, replayed from CUDA graphs (``bash benchmarks/pending_gpu.sh $OUT eleven``,
    docs/results.md): forward 0.080 ms (``scan``) against 0.116 ms (``lookback``); forward+backward 0.254 ms with
    the scan backward against 0.804 ms for ``lookback`` with the walking backward."""
    impl = getenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    if impl not in ("fused", "lookback", "chunked", "scan"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_FWD must be 'fused', 'lookback', 'chunked' or 'scan', got {impl!r}")
    return impl


@triton.jit
def _seq_span(i_n, cu, T, VARLEN: tl.constexpr):
    """(first packed row, length) of sequence ``i_n``: from ``cu_seqlens`` (``VARLEN``) or a dense batch of ``T``."""
    if VARLEN:
        bos = tl.load(cu + i_n).to(tl.int64)
        L = tl.load(cu + i_n + 1).to(tl.int64) - bos
    else:
        bos = tl.cast(i_n, tl.int64) * T
        L = tl.cast(T, tl.int64)
    return bos, L


@triton.jit
def _lse_combine(m1, w1, m2, w2):
    """(max, sum exp(s - max)) pairs; an empty pair (-inf, 0) is the identity (no inf - inf)."""
    m = tl.maximum(m1, m2)
    w = tl.where(m1 == m, w1, w1 * exp_ftz(m1 - m)) + tl.where(m2 == m, w2, w2 * exp_ftz(m2 - m))
    return m, w


@triton.jit
def _lin_combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


def _fused_configs():
    if interpret_mode():
        return [triton.Config({"BT": 32, "BV": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BT": bt, "BV": bv}, num_warps=w, num_stages=st)
            for bt, bv, w, st in ((64, 16, 2, 2), (64, 16, 4, 3), (64, 32, 4, 2), (64, 32, 4, 3), (32, 32, 2, 3),
                                  (128, 16, 4, 2), (128, 32, 8, 2), (64, 64, 4, 2), (32, 16, 1, 3), (32, 64, 4, 3))]


@triton.autotune(configs=_fused_configs(), key=["H", "V", "VARLEN", "HAS_H0"])
@triton.jit
def _pa_fused_fwd_kernel(s, v, o, lse, m0, u0, w0, mT, uT, wT, cu, T, H: tl.constexpr, V: tl.constexpr,
                         BT: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, VARLEN: tl.constexpr):
    """One program per (value block, sequence x head) walks its chunks left to right, carrying the running
    (max m, denominator w, output o). In a chunk, ``(m_t, w_t)`` is an associative scan over the scores
    combined with the carry, ``beta_t = exp(s_t - m_t) / w_t`` and ``o_t = (1 - beta_t) o_{t-1} + beta_t v_t``
    (a convex combination, exact for any score range) is a linear scan over the ``[BT, BV]`` tile, so ``v`` is
    read once and ``o`` written once."""
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, L = _seq_span(i_n, cu, T, VARLEN)
    o_t = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    mask_v = o_v < V
    i_nh64 = tl.cast(i_nh, tl.int64)
    if HAS_H0:
        b_m = tl.load(m0 + i_nh64)
        b_w = tl.load(w0 + i_nh64)
        b_u = tl.load(u0 + i_nh64 * V + o_v, mask=mask_v, other=0.0)
        b_o = tl.where(b_w > 0, b_u / tl.where(b_w > 0, b_w, 1.0), 0.0)
    else:
        b_m = tl.full([], float("-inf"), tl.float32)
        b_w = tl.full([], 0.0, tl.float32)
        b_o = tl.zeros([BV], dtype=tl.float32)
    NC = tl.cdiv(L, BT)
    for j in tl.range(0, NC):
        t = j * BT + o_t
        mask_t = t < L
        rows = bos + t
        b_s = tl.load(s + rows * H + i_h, mask=mask_t, other=float("-inf")).to(tl.float32)
        mask2 = mask_t[:, None] & mask_v[None, :]
        ptr = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + ptr, mask=mask2, other=0.0).to(tl.float32)
        live = b_s > float("-inf")
        cm, cw = tl.associative_scan((b_s, live.to(tl.float32)), 0, _lse_combine)
        mt, wt = _lse_combine(b_m, b_w, cm, cw)  # [BT]: running max and denominator after step t
        beta = tl.where(live, exp_ftz(b_s - mt) / tl.where(wt > 0, wt, 1.0), 0.0)
        alpha = 1.0 - beta
        ca, cx = tl.associative_scan((tl.broadcast_to(alpha[:, None], (BT, BV)), beta[:, None] * b_v), 0,
                                     _lin_combine)
        b_ot = cx + ca * b_o[None, :]
        tl.store(o + ptr, b_ot.to(o.dtype.element_ty), mask=mask2)
        if i_v == 0:
            tl.store(lse + rows * H + i_h, mt + tl.log(wt), mask=mask_t)
        last = o_t == BT - 1  # padded rows (s = -inf) leave the state unchanged, so the tile's last row is it
        b_o = tl.sum(tl.where(last[:, None], b_ot, 0.0), 0)
        b_m = tl.sum(tl.where(last, mt, 0.0), 0)
        b_w = tl.sum(tl.where(last, wt, 0.0), 0)
    tl.store(uT + i_nh64 * V + o_v, b_o * b_w, mask=mask_v)
    if i_v == 0:
        tl.store(mT + i_nh64, b_m)
        tl.store(wT + i_nh64, b_w)


def _keep_initial(m0, u0, w0, mT, uT, wT) -> None:
    """Final state of sequences with no steps: the initial state, or the empty ``(-inf, 0, 0)``."""
    if m0 is None:
        mT.fill_(float("-inf")), uT.zero_(), wT.zero_()
    else:
        mT.copy_(m0), uT.copy_(u0), wT.copy_(w0)


def _fwd_outputs(v: torch.Tensor, N: int):
    """The forward's outputs for ``v`` ``[B, T, H, V]`` and ``N`` sequences: ``o`` like ``v``, float32 ``lse``
    ``[B, T, H]`` and final state ``m_T, u_T, w_T`` (``[N, H]``, ``[N, H, V]``, ``[N, H]``)."""
    B, T, H, V = v.shape
    f32 = dict(device=v.device, dtype=torch.float32)
    return (torch.empty_like(v), torch.empty(B, T, H, **f32), torch.empty(N, H, **f32), torch.empty(N, H, V, **f32),
            torch.empty(N, H, **f32))


def prefix_attention_fwd_fused(s, v, m0, u0, w0, cu_seqlens):
    """Forward in one launch reading ``v`` once (see :func:`_pa_fused_fwd_kernel`); returns
    (o, m_T, u_T, w_T, lse) like :func:`prefix_attention_fwd`."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    o, lse, mT, uT, wT = _fwd_outputs(v, N)
    grid = lambda meta: (cdiv(V, meta["BV"]), N * H)  # noqa: E731
    _pa_fused_fwd_kernel[grid](s.contiguous(), v, o, lse, m0, u0, w0, mT, uT, wT, cu_seqlens, T, H=H, V=V,
                               HAS_H0=m0 is not None, VARLEN=cu_seqlens is not None)
    return o, mT, uT, wT, lse


# ---------------------------------------------------------------------------------------------------------------
# Forward, ``SEQLAB_PREFIX_ATTN_FWD=lookback``: one pass, every program independent, decoupled look-back.
# ---------------------------------------------------------------------------------------------------------------

_LB_HEAD = 16  # workspace words before the records: the ticket counter, padded so records stay 16-byte aligned
_LB_AGG = tl.constexpr(1)  # high half of a published word: the chunk's own aggregate
_LB_INC = tl.constexpr(2)  # the inclusive aggregate (everything up to and including the chunk, the initial state too)
# Fast in-chunk weights (see _pa_lookback_fwd_kernel) for chunks whose scores lie at most this far below the chunk's
# max from the first one on: every row's largest weight is then >= exp(-SPREAD), far above the float32 / bfloat16
# underflow (exp(-87)), and the row factor exp(M_c - m_t) <= exp(SPREAD) cannot overflow. float16 weights are normal
# only down to 2^-14 (about exp(-9.7)), so float16 values take the fast weights within 8 only.
_FAST_SPREAD = tl.constexpr(60.0)
_FAST_SPREAD_F16 = tl.constexpr(8.0)


def _lb_slots(n_seqs: int, T: int, varlen: bool, BT: int) -> int:
    """Chunk slots: ``N * cdiv(T, BT)`` dense; packed, sequence ``n`` owns the slots from ``cu[n] // BT + n``
    (strictly increasing in ``n``, at least ``cdiv(L_n, BT)`` of them), ``cdiv(T, BT) + N`` in all."""
    return cdiv(T, BT) + n_seqs if varlen else n_seqs * cdiv(T, BT)


def _lb_zero_ws(nargs) -> None:
    """Config pre-hook, run before every launch (autotuning runs included): zero the ticket counter and the
    records this config uses (zero = nothing published)."""
    n = _LB_HEAD + _lb_slots(nargs["NSEQ"], nargs["T"], nargs["VARLEN"], nargs["BT"]) * nargs["H"] * nargs["RW"]
    nargs["ws"][:n].zero_()


def _lb_config(bt: int, bv: int, warps: int, maxnreg: int | None = None, scan: bool = True) -> triton.Config:
    """``LR``: rows of the look-back tile, ``LR * BV`` = the program's threads (see :func:`_lb_look_back`)."""
    return triton.Config({"BT": bt, "BV": bv, "LR": max(1, 32 * warps // bv), "CUMMAX_SCAN": scan},
                         num_warps=warps, num_stages=1, maxnreg=maxnreg or None, pre_hook=_lb_zero_ws)


def _lb_configs():
    """(BT, BV, warps, register cap, running max by scan). Without a cap ptxas takes what it likes (219 registers a
    thread at BT = BV = 64 with 4 warps; sm_90, Triton 3.6, offline ``ptxas -v``), which leaves 1 or 2 programs
    per SM: too few loads in flight for a bandwidth-bound kernel, so most configs cap the registers (``maxnreg``)
    for 3 to 8 programs per SM, at the price of spills (below). The running max as a 1-D max scan over the ``[BT]``
    scores needs fewer registers than the masked ``[BT, BT]`` max; both forms are in the set."""
    if interpret_mode():
        return [_lb_config(32, 16, 4)]
    # 64-step chunks: 2 to 8 programs per SM, 16 to 64 KiB of bf16 v in flight per SM. Spills, offline for sm_90
    # (Triton 3.6 with its bundled ptxas 12.8, ``ptxas -v`` bytes of spill stores; bf16 v, float32 s, dense, no
    # initial state; both weight variants compiled in): none uncapped (64, 64, 8: 199 registers); (64, 32, 4, 96):
    # 140, (64, 64, 8, 64): 320, (64, 32, 4, 64): 464, (64, 128, 8, 80): 572, (64, 128, 4, 128): 616,
    # (64, 128, 8, 64): 784, (64, 64, 4, 96): 792, (64, 64, 4, 80): 1212; masked max (64, 64, 8, 80): 368,
    # (64, 128, 4, 128): 1018. 128-step chunks (the [128, 128] weights tile): 2 programs per SM, 492 and 2392.
    # Before the fast weights the same method gave 92 to 1136 (e.g. 316 and 626 for (64, 64, 8, 64) and
    # (64, 128, 4, 128), 284 and 616 for the masked-max pair); the 8 to 140 bytes quoted here earlier did not
    # reproduce.
    return [_lb_config(*c) for c in (
        (64, 32, 4, 64), (64, 32, 4, 96), (64, 64, 4, 80), (64, 64, 4, 96), (64, 64, 8, 64), (64, 64, 8, None),
        (64, 128, 4, 128), (64, 128, 8, 64), (64, 128, 8, 80), (64, 64, 8, 80, False), (64, 128, 4, 128, False),
        (128, 64, 8, 128), (128, 128, 8, 128))]


def _lb_pinned() -> triton.Config | None:
    """``SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=BT,BV,WARPS[,MAXNREG[,SCAN]]`` (MAXNREG 0: no cap; SCAN 0: masked max)
    pins one config instead of autotuning: tuning sweeps, and tests of other tile sizes under the interpreter."""
    env = getenv("SEQLAB_PREFIX_ATTN_LOOKBACK_CFG")
    if not env:
        return None
    x = [int(p) for p in env.split(",")]
    return _lb_config(x[0], x[1], x[2], x[3] if len(x) > 3 else None, bool(x[4]) if len(x) > 4 else True)


@triton.jit
def _lb_pack(x, FLAG: tl.constexpr):
    """float32 -> int64 word: the value's bits in the low half, ``FLAG`` in the high half (one 64-bit store, so a
    reader never sees a flag without its value and needs no fence)."""
    return (x.to(tl.int32, bitcast=True).to(tl.int64) & 0xFFFFFFFF) | (FLAG * 4294967296)


@triton.jit
def _lb_unpack(w):
    return (w & 0xFFFFFFFF).to(tl.int32).to(tl.float32, bitcast=True)


@triton.jit
def _lb_merge(m1, u1, w1, m2, u2, w2):
    """Log-sum-exp merge of two (max, numerator, denominator) aggregates; ``(-inf, 0, 0)`` is the identity and
    ``-inf - -inf`` never reaches a result."""
    m = tl.maximum(m1, m2)
    a = exp_ftz(tl.where(m1 == m, 0.0, m1 - m))
    b = exp_ftz(tl.where(m2 == m, 0.0, m2 - m))
    return m, u1 * a + u2 * b, w1 * a + w2 * b


@triton.jit
def _lb_publish(rec, o_v, mask_v, i_v, m, u, w, V: tl.constexpr, FLAG: tl.constexpr):
    """Record of one (slot, head): ``V`` numerator words, then a (max, denominator) pair per value block."""
    tl.store(rec + o_v, _lb_pack(u, FLAG), mask=mask_v)
    tl.store(rec + V + 2 * i_v, _lb_pack(m, FLAG))
    tl.store(rec + V + 2 * i_v + 1, _lb_pack(w, FLAG))


@triton.jit
def _lb_step(wu, wm, ww, todo, acc_m, acc_u, acc_w, k, done, first):
    """One look-back step of every element still walking (``todo``), on the words it loaded itself: merge an
    aggregate and move one slot back, or merge an inclusive aggregate and stop."""
    fu, fm, fw = wu >> 32, wm >> 32, ww >> 32
    inc = todo & (fu == 2) & (fm == 2) & (fw == 2)
    take = inc | (todo & (fu == 1) & (fm == 1) & (fw == 1))
    nm, nu, nw = _lb_merge(acc_m, acc_u, acc_w, _lb_unpack(wm), _lb_unpack(wu), _lb_unpack(ww))
    acc_m = tl.where(take, nm, acc_m)
    acc_u = tl.where(take, nu, acc_u)
    acc_w = tl.where(take, nw, acc_w)
    k = tl.where(take & (inc == 0), k - 1, k)
    done = tl.where(inc | (k < first), 1, done)
    return acc_m, acc_u, acc_w, k, done


@triton.jit
def _lb_early_poll(ws, slot, i_h, i_v, H: tl.constexpr, V: tl.constexpr, RW: tl.constexpr, BV: tl.constexpr,
                   LR: tl.constexpr):
    """The preceding slot's record words, as the ``[LR, BV]`` tile :func:`_lb_look_back` walks with, loaded while
    the chunk's own tile is in flight (``EARLY``): its first step then costs no extra round trip."""
    o_c = i_v * BV + tl.arange(0, BV)[None, :]
    live = (o_c < V) & (tl.arange(0, LR)[:, None] >= 0)
    rec = ws + ((slot - 1) * H + i_h) * RW
    pu = tl.load(rec + o_c, mask=live, other=0, volatile=True)
    pm = tl.load(rec + V + 2 * i_v + o_c * 0, mask=live, other=0, volatile=True)
    pw = tl.load(rec + V + 2 * i_v + 1 + o_c * 0, mask=live, other=0, volatile=True)
    return pu, pm, pw


@triton.jit
def _lb_look_back(ws, slot, first, i_h, i_v, pu, pm, pw, H: tl.constexpr, V: tl.constexpr, RW: tl.constexpr,
                  BV: tl.constexpr, LR: tl.constexpr, EARLY: tl.constexpr):
    """Exclusive prefix ``(m, u [BV], w)`` of chunk ``slot`` (not the first of its sequence): merge the aggregates
    of slots ``slot - 1, slot - 2, ...`` until one holds an inclusive aggregate (the first chunk of a sequence
    always publishes one, at slot ``first``; a walk never passes it, so a broken invariant ends in wrong numbers
    rather than a hang).

    Every element of an ``[LR, BV]`` tile (``LR * BV`` = the program's threads: one element a thread, no copies)
    walks on its own: it loads its numerator word and the record's max and denominator words itself, and merges
    only when all three carry the same flag (a record seen half-written, or while its aggregate is being
    overwritten by the inclusive one, is read again). The loop ends when the reduction over the whole tile says
    every element has met an inclusive aggregate. So no thread ever uses a word that another thread checked (a
    layout holding copies of a vector would let a copy read before the store be used after another copy passed
    the check), and the exit is uniform. Elements may take different paths (aggregate then inclusive, or the
    later inclusive at once): equal up to rounding."""
    o_c = i_v * BV + tl.arange(0, BV)[None, :]
    o_r = tl.arange(0, LR)[:, None]
    live = (o_c < V) & (o_r >= 0)  # [LR, BV]
    done = tl.where(live, 0, 1)
    k = tl.zeros([LR, BV], dtype=tl.int64) + (slot - 1)
    acc_m = tl.full([LR, BV], float("-inf"), tl.float32)
    acc_u = tl.zeros([LR, BV], dtype=tl.float32)
    acc_w = tl.zeros([LR, BV], dtype=tl.float32)
    if EARLY:  # the first step's words were loaded with the chunk's tile (:func:`_lb_early_poll`)
        acc_m, acc_u, acc_w, k, done = _lb_step(pu, pm, pw, done == 0, acc_m, acc_u, acc_w, k, done, first)
    while tl.min(done) == 0:
        rec = ws + (k * H + i_h) * RW
        todo = done == 0
        wu = tl.load(rec + o_c, mask=todo, other=0, volatile=True)
        wm = tl.load(rec + V + 2 * i_v, mask=todo, other=0, volatile=True)
        ww = tl.load(rec + V + 2 * i_v + 1, mask=todo, other=0, volatile=True)
        acc_m, acc_u, acc_w, k, done = _lb_step(wu, wm, ww, todo, acc_m, acc_u, acc_w, k, done, first)
    # one consistent copy (row 0) out of the tile; the max is the same on every path
    row0 = o_r == 0
    b_m = tl.max(tl.max(acc_m, 1), 0)
    b_u = tl.sum(tl.where(row0, acc_u, 0.0), 0)
    b_w = tl.sum(tl.sum(tl.where(row0 & (o_c == i_v * BV), acc_w, 0.0), 1), 0)
    return b_m, b_u, b_w


@triton.jit
def _lb_store_state(mT, uT, wT, i_nh, o_v, mask_v, i_v, m, u, w, V: tl.constexpr):
    tl.store(uT + i_nh * V + o_v, u, mask=mask_v)
    if i_v == 0:
        tl.store(mT + i_nh, m)
        tl.store(wT + i_nh, w)


@triton.autotune(configs=_lb_configs(), key=["V", "TICKET", "EARLY", "ABLATE", "FAST"])
@triton.jit
def _pa_lookback_fwd_kernel(s, v, o, lse, m0, u0, w0, mT, uT, wT, cu, ws, T, NSEQ, H: tl.constexpr,
                            V: tl.constexpr, RW: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr,
                            LR: tl.constexpr, CUMMAX_SCAN: tl.constexpr, HAS_H0: tl.constexpr,
                            VARLEN: tl.constexpr, IEEE: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
                            TICKET: tl.constexpr = True, EARLY: tl.constexpr = False, ABLATE: tl.constexpr = 0,
                            FAST: tl.constexpr = True):
    """One program per (chunk of ``BT`` steps, head, value block), all independent: load the chunk's scores and
    values once, publish the chunk's own aggregate (max ``M_c``, ``W_c = sum e_i``, ``L_c = sum e_i v_i`` with
    ``e_i = exp(s_i - M_c)``; inclusive of the initial state at once when the chunk starts its sequence), take the
    exclusive prefix ``(M_p, U_p, W_p)`` of the earlier chunks by a decoupled look-back (the (max, numerator,
    denominator) triples combine associatively: Feng et al. 2024, "Attention as an RNN", section 3.2) and publish
    the inclusive aggregate, then write the outputs and, from a sequence's last chunk, the final state (the
    inclusive aggregate).

    Outputs: with the chunk's local running max ``cm_t = max_{i<=t} s_i``, ``m_t = max(M_p, cm_t)``,
    ``a_t = exp(M_p - m_t) <= 1``, weights ``W[t, i]`` (``i <= t``) relative to a row reference ``c_t`` and
    ``r_t = exp(c_t - m_t)``::

        u_t = a_t U_p + r_t (W @ v)_t,   d_t = a_t W_p + r_t rowsum(W)_t,   o_t = u_t / d_t,   lse_t = m_t + log d_t

    ``W @ v`` by one ``tl.dot``; on the low-precision path W is rounded to ``v``'s dtype first and the row sums are
    those of the rounded W, so ``o`` stays a convex combination of value rows (float32 W and an IEEE dot otherwise).
    Each chunk picks its W at run time, by one scalar test, in a branch that builds W and ``c_t`` only:

    - fast, when its first score ``s_0`` is finite and ``M_c - s_0 <= 60`` (8 for float16 values, whose weights are
      normal only down to ``2^-14``): ``c_t = M_c``, ``W[t, i] = e_i``, a select of one broadcast row instead of
      ``BT * BT`` exps and subtractions. As ``m_t >= cm_t >= s_0``, ``r_t <= exp(60)`` cannot overflow, and every
      row's largest weight ``exp(cm_t - M_c) >= exp(-60)`` is a normal float32 / bfloat16 with full precision; a
      weight that underflows (below ``exp(-87)``) is below ``exp(-27)`` times its row's largest. Products
      ``e_i v_i`` under float32's normal range (values ``|v| < ~1e-12`` at a spread near 60) may be lost: an
      absolute error in ``o`` below ``BT * 2^-126 * exp(60)``, about ``1e-10`` at ``BT = 64``.
    - exact, otherwise (a spread over 60, or ``s_0 = -inf``): ``c_t = cm_t``, ``W[t, i] = exp(s_i - cm_t) <= 1``,
      ``r_t <= 1``, for any score range.

    ``-inf`` scores (padding rows past the sequence's end, or the caller's) get zero weight, and no ``-inf - -inf``
    reaches a result. ``FAST=False`` (``SEQLAB_PREFIX_ATTN_FAST=0``, benchmarks and tests) gives every chunk the
    exact weights. W does not depend on ``M_p``, but the look-back still comes before the ``[BT, BT]`` work, so only
    the value tile and a few scalars (the fast test's outcome among them) are live across the wait.

    Programs take (chunk, head, value block) from an atomic ticket in chunk order, so every chunk a look-back
    waits for belongs to a program already running: no deadlock whatever the scheduling order. ``TICKET=False``
    takes them in program-id order instead (one L2 round trip less; relies on in-order block dispatch, as CUB's
    ``DeviceScan`` and scan1's default do), and ``EARLY`` loads the preceding slot's record with the chunk's tile so
    the look-back's first step needs no extra round trip (``SEQLAB_PREFIX_ATTN_TICKET=0``,
    ``SEQLAB_PREFIX_ATTN_EARLY_POLL=1``; scan1 gained 18% in the bf16 forward from the pair on an H200)."""
    NV: tl.constexpr = (V + BV - 1) // BV
    if TICKET:
        tk = tl.atomic_add(ws, 1).to(tl.int64)  # ws[0]: the ticket counter
    else:
        tk = tl.program_id(0).to(tl.int64)
    rws = ws + 16  # records: [slot, head, RW] words (_LB_HEAD)
    i_v = tk % NV
    q = tk // NV
    i_h = q % H
    q = q // H  # chunks in slot order (packed) or chunk-major (dense); predecessors always earlier
    if VARLEN:
        slot = q
        lo = q * 0
        hi = lo + NSEQ - 1
        while lo < hi:  # sequence of the slot: the last n with cu[n] // BT + n <= slot
            mid = (lo + hi + 1) // 2
            if tl.load(cu + mid).to(tl.int64) // BT + mid <= slot:
                lo = mid
            else:
                hi = mid - 1
        i_n = lo
        bos = tl.load(cu + i_n).to(tl.int64)
        L = tl.load(cu + i_n + 1).to(tl.int64) - bos
        j = slot - (bos // BT + i_n)
    else:
        i_n = q % NSEQ
        j = q // NSEQ
        slot = i_n * tl.cdiv(T, BT) + j
        bos = i_n * T
        L = tl.cast(T, tl.int64)
    nch = (L + BT - 1) // BT
    i_nh = i_n * H + i_h
    o_t = tl.arange(0, BT)
    o_v = i_v * BV + tl.arange(0, BV)
    mask_v = o_v < V
    if j < nch:
        r0 = bos + j * BT  # first row of the chunk
        mask_t = o_t < L - j * BT
        mask2 = mask_t[:, None] & mask_v[None, :]
        offs = o_t[:, None] * (H * V) + o_v[None, :]  # int32 tile offsets from a scalar base: few registers
        base = (r0 * H + i_h) * V
        b_s = tl.load(s + r0 * H + i_h + o_t * H, mask=mask_t, other=float("-inf")).to(tl.float32)
        b_v = tl.load(v + base + offs, mask=mask2, other=0.0)
        pu = tl.zeros([LR, BV], dtype=tl.int64)
        pm = pu
        pw = pu
        if EARLY:
            if j > 0:
                pu, pm, pw = _lb_early_poll(rws, slot, i_h, i_v, H, V, RW, BV, LR)
        if IEEE:
            b_v = b_v.to(tl.float32)
        if ABLATE == 2:  # benchmark-only: the loads and the store of the output tile, nothing between
            tl.store(o + base + offs, b_v.to(o.dtype.element_ty), mask=mask2)
        else:
            # 1. the chunk's own aggregate, published at once (inclusive already when the chunk starts its sequence)
            b_mc = tl.max(b_s, 0)
            b_e = exp_ftz(tl.where(b_s > float("-inf"), b_s - b_mc, float("-inf")))
            b_wc = tl.sum(b_e, 0)
            b_lc = tl.sum(b_e[:, None] * b_v.to(tl.float32), 0)  # [BV]
            # the chunk's weights in step 3: fast when its first score is finite and at most SPREAD below its max
            fast = False
            if FAST:
                SPREAD: tl.constexpr = _FAST_SPREAD_F16 if v.dtype.element_ty == tl.float16 else _FAST_SPREAD
                b_s0 = tl.load(s + r0 * H + i_h).to(tl.float32)  # row 0 always exists
                live0 = b_s0 > float("-inf")
                fast = live0 & (b_mc - tl.where(live0, b_s0, 0.0) <= SPREAD)  # no -inf - -inf
            rec = rws + (slot * H + i_h) * RW
            b_mp = tl.full([], float("-inf"), tl.float32)
            b_up = tl.zeros([BV], dtype=tl.float32)
            b_wp = tl.full([], 0.0, tl.float32)
            if j == 0:
                if HAS_H0:
                    b_mp = tl.load(m0 + i_nh)
                    b_up = tl.load(u0 + i_nh * V + o_v, mask=mask_v, other=0.0)
                    b_wp = tl.load(w0 + i_nh)
                b_mi, b_ui, b_wi = _lb_merge(b_mp, b_up, b_wp, b_mc, b_lc, b_wc)
                _lb_publish(rec, o_v, mask_v, i_v, b_mi, b_ui, b_wi, V, _LB_INC)
            elif ABLATE == 1:  # benchmark-only: no look-back, the chunk's own aggregate as its prefix
                b_mi, b_ui, b_wi = b_mc, b_lc, b_wc
            else:
                _lb_publish(rec, o_v, mask_v, i_v, b_mc, b_lc, b_wc, V, _LB_AGG)
                # 2. exclusive prefix by look-back
                b_mp, b_up, b_wp = _lb_look_back(rws, slot, slot - j, i_h, i_v, pu, pm, pw, H, V, RW, BV, LR,
                                                 EARLY)
                b_mi, b_ui, b_wi = _lb_merge(b_mp, b_up, b_wp, b_mc, b_lc, b_wc)
                if not NO_INCLUSIVE:  # the inclusive aggregate ends the look-backs of the chunks after this one
                    _lb_publish(rec, o_v, mask_v, i_v, b_mi, b_ui, b_wi, V, _LB_INC)
            # 3. outputs (see the docstring): local running max cm_t (a 1-D max scan over the [BT] scores, or a
            # masked [BT, BT] max), m_t = max(M_p, cm_t); the runtime branch builds only the weights W (rounded to
            # the dot's input dtype inside it) and the row reference c_t, r_t = exp(c_t - m_t); one tl.dot for both
            causal = o_t[:, None] >= o_t[None, :]
            if CUMMAX_SCAN:
                b_cm = tl.associative_scan(b_s, 0, _max_combine)  # [BT]
            else:
                b_cm = tl.max(tl.where(causal, b_s[None, :], float("-inf")), 1)
            b_mt = tl.maximum(b_cm, b_mp)
            if fast:  # W[t, i] = e_i = exp(s_i - M_c) (0 for s_i = -inf): a select of a broadcast row, no exp
                b_c = tl.zeros([BT], dtype=tl.float32) + b_mc
                b_p = tl.where(causal, b_e.to(b_v.dtype)[None, :], 0.0)  # [BT, BT]
            else:  # W[t, i] = exp(s_i - cm_t) <= 1
                b_c = b_cm
                keep = causal & (b_s[None, :] > float("-inf"))  # then cm_t >= s_i is finite
                b_cmf = tl.where(b_cm > float("-inf"), b_cm, 0.0)  # rows of -inf scores: no -inf - -inf
                b_p = exp_ftz(tl.where(keep, b_s[None, :] - b_cmf[:, None], float("-inf"))).to(b_v.dtype)
            if IEEE:  # float32 weights and values
                b_pv = tl.dot(b_p, b_v, input_precision="ieee")
            else:
                b_pv = tl.dot(b_p, b_v)  # float32 accumulate
            b_rs = tl.sum(b_p.to(tl.float32), 1)  # the rounded weights: o stays a convex combination
            b_r = exp_ftz(tl.where(b_c == b_mt, 0.0, b_c - b_mt))  # exp(-inf - -inf) is never formed
            b_a = exp_ftz(tl.where(b_mp == b_mt, 0.0, b_mp - b_mt))  # exp(-inf - -inf) is never formed
            b_wt = b_a * b_wp + b_r * b_rs
            b_ut = b_a[:, None] * b_up[None, :] + b_r[:, None] * b_pv
            tl.store(o + base + offs, (b_ut / b_wt[:, None]).to(o.dtype.element_ty), mask=mask2)
            if i_v == 0:
                tl.store(lse + r0 * H + i_h + o_t * H, b_mt + tl.log(b_wt), mask=mask_t)
            # 4. the final state from the sequence's last chunk
            if j == nch - 1:
                _lb_store_state(mT, uT, wT, i_nh, o_v, mask_v, i_v, b_mi, b_ui, b_wi, V)
    if VARLEN:
        if (L == 0) & (j == 0):  # an empty sequence keeps its initial state
            b_m0 = tl.full([], float("-inf"), tl.float32)
            b_u0 = tl.zeros([BV], dtype=tl.float32)
            b_w0 = tl.full([], 0.0, tl.float32)
            if HAS_H0:
                b_m0 = tl.load(m0 + i_nh)
                b_u0 = tl.load(u0 + i_nh * V + o_v, mask=mask_v, other=0.0)
                b_w0 = tl.load(w0 + i_nh)
            _lb_store_state(mT, uT, wT, i_nh, o_v, mask_v, i_v, b_m0, b_u0, b_w0, V)


def _lookback_test() -> bool:
    """``SEQLAB_PREFIX_ATTN_LOOKBACK_TEST=1``: only the first chunk of a sequence publishes an inclusive
    aggregate, so every look-back merges aggregates back to the sequence start: the path concurrent GPU programs
    take, which the sequential interpreter (predecessors always finished) would otherwise never run."""
    return getenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST") == "1"


def _lb_ablate() -> int:
    """``SEQLAB_PREFIX_ATTN_ABLATE`` (benchmarks only; the results are wrong): 0 (default) the real look-back
    forward; 1 every chunk takes its own aggregate as its prefix (no publishing, no look-back); 2 the value tile is
    loaded and stored as the output (no scores, no matmul). Timed beside the real kernel they split its time."""
    v = int(getenv("SEQLAB_PREFIX_ATTN_ABLATE", "0"))
    if v not in (0, 1, 2):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_ABLATE must be 0, 1 or 2, got {v}")
    return v


def _lb_fast() -> bool:
    """``SEQLAB_PREFIX_ATTN_FAST`` (benchmarks and tests): 1 (default) chunks whose scores allow it take the fast
    in-chunk weights (no ``[BT, BT]`` exp, see :func:`_pa_lookback_fwd_kernel`); 0 every chunk takes the exact
    weights ``exp(s_i - cm_t)``. Both are exact; a constexpr in the autotune key, so one process can time both."""
    v = getenv("SEQLAB_PREFIX_ATTN_FAST", "1")
    if v not in ("0", "1"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_FAST must be 0 or 1, got {v!r}")
    return v == "1"


def prefix_attention_fwd_lookback(s, v, m0, u0, w0, cu_seqlens):
    """Forward in one launch of independent programs joined by a decoupled look-back (see
    :func:`_pa_lookback_fwd_kernel`): reads ``v`` and ``s`` once, writes ``o`` and ``lse`` once, no scan.
    Returns (o, m_T, u_T, w_T, lse) like :func:`prefix_attention_fwd`."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    dev = v.device
    o, lse, mT, uT, wT = _fwd_outputs(v, N)
    if T == 0:  # no chunks: every sequence keeps its initial state
        _keep_initial(m0, u0, w0, mT, uT, wT)
        return o, mT, uT, wT, lse
    varlen = cu_seqlens is not None
    pinned = _lb_pinned()
    cfgs = [pinned] if pinned is not None else _pa_lookback_fwd_kernel.configs
    # records for the most slots and value blocks any config uses; _lb_zero_ws zeroes what the chosen one uses
    rw = V + 2 * cdiv(V, min(c.kwargs["BV"] for c in cfgs))
    n_slots = _lb_slots(N, T, varlen, min(c.kwargs["BT"] for c in cfgs))
    ws = torch.empty(_LB_HEAD + n_slots * H * rw, device=dev, dtype=torch.int64)
    grid = lambda meta: (_lb_slots(N, T, varlen, meta["BT"]) * H * cdiv(V, meta["BV"]),)  # noqa: E731
    args = (s.contiguous(), v, o, lse, m0, u0, w0, mT, uT, wT, cu_seqlens, ws, T, N)
    kw = dict(H=H, V=V, RW=rw, HAS_H0=m0 is not None, VARLEN=varlen,
              IEEE=v.dtype == torch.float32 or interpret_mode(), NO_INCLUSIVE=_lookback_test(),
              TICKET=getenv("SEQLAB_PREFIX_ATTN_TICKET", "1") == "1",
              EARLY=getenv("SEQLAB_PREFIX_ATTN_EARLY_POLL", "0") == "1", ABLATE=_lb_ablate(),
              FAST=_lb_fast())
    if pinned is None:
        _pa_lookback_fwd_kernel[grid](*args, **kw)
    else:
        meta = dict(kw, **pinned.kwargs)
        _lb_zero_ws(dict(zip(_pa_lookback_fwd_kernel.fn.arg_names, args), **meta))
        opts = dict(num_warps=pinned.num_warps, num_stages=pinned.num_stages)
        if pinned.maxnreg and not interpret_mode():
            opts["maxnreg"] = pinned.maxnreg
        _pa_lookback_fwd_kernel.fn[grid](*args, **meta, **opts)
    return o, mT, uT, wT, lse


def prefix_attention_fwd(s, v, m0, u0, w0, cu_seqlens):
    """Returns (o, m_T, u_T, w_T, lse). By default the fused single-pass kernel
    (:func:`prefix_attention_fwd_fused`); ``SEQLAB_PREFIX_ATTN_FWD=chunked`` takes the three launches below
    (chunk triples in parallel, carry scan over chunks, outputs in parallel), which read ``v`` twice."""
    impl = _fwd_impl()
    if impl == "fused":
        return prefix_attention_fwd_fused(s, v, m0, u0, w0, cu_seqlens)
    if impl == "lookback":
        return prefix_attention_fwd_lookback(s, v, m0, u0, w0, cu_seqlens)
    if impl == "scan":
        from seqlab.kernels.prefix_attention.triton_lin import prefix_attention_fwd_scan
        return prefix_attention_fwd_scan(s, v, m0, u0, w0, cu_seqlens)
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BT, BV = 64, min(64, max(16, next_pow2(V)))
    NV = cdiv(V, BV)
    s = s.contiguous()
    dev = v.device
    NT, NTS, cidx, coff = _chunk_table(B, T, cu_seqlens, BT, dev)
    o, lse, mT, uT, wT = _fwd_outputs(v, N)
    sm, sw, cm, cw = (torch.empty(max(NT, 1), H, device=dev, dtype=torch.float32) for _ in range(4))
    su, cuv = (torch.empty(max(NT, 1), H, V, device=dev, dtype=torch.float32) for _ in range(2))
    varlen = cu_seqlens is not None
    if NT:
        _pa_summary_kernel[(NV, NT, H)](s, v, sm, su, sw, cidx, cu_seqlens, T, NTS, H=H, V=V, BT=BT, BV=BV,
                                        VARLEN=varlen, num_warps=4)
    _pa_carry_kernel[(NV, N, H)](sm, su, sw, cm, cuv, cw, m0, u0, w0, mT, uT, wT, coff, H=H, V=V, BV=BV,
                                 HAS_H0=m0 is not None, num_warps=1)
    if NT:
        _pa_out_kernel[(NV, NT, H)](s, v, o, lse, cm, cuv, cw, cidx, cu_seqlens, T, NTS, H=H, V=V, BT=BT,
                                    BV=BV, VARLEN=varlen, IEEE=v.dtype == torch.float32 or interpret_mode(),
                                    num_warps=4)
    return o, mT, uT, wT, lse


def prefix_attention_bwd(s, v, o, lse, m0, mT, cu_seqlens, do, duT, dwT, u0=None, w0=None):
    """Launch the backward; returns (ds, dv, du0, dw0). ``SEQLAB_PREFIX_ATTN_BWD=scan`` takes
    :func:`seqlab.kernels.prefix_attention.triton_lin_bwd.prefix_attention_bwd_scan` (which needs ``u0``, ``w0``)."""
    from seqlab.kernels.prefix_attention import triton_lin_bwd

    if triton_lin_bwd._bwd_form() == "scan" and v.shape[1] > 0:
        return triton_lin_bwd.prefix_attention_bwd_scan(s, v, o, lse, m0, u0, w0, mT, cu_seqlens, do, duT, dwT)
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BT, BV = _cfg(V)
    NV = cdiv(V, BV)
    dv = torch.empty_like(v)
    ds_part = torch.empty(NV, B, T, H, device=v.device, dtype=torch.float32)
    du0 = torch.zeros(N, H, V, device=v.device, dtype=torch.float32)
    dw0_part = torch.zeros(NV, N, H, device=v.device, dtype=torch.float32)
    _pa_bwd_kernel[(NV, N * H)](s, v, o, lse, m0, mT, cu_seqlens, do, duT, dwT, ds_part, dv, du0, dw0_part,
                                T, N * H, B * T * H, H=H, V=V, BT=BT, BV=BV, HAS_H0=m0 is not None,
                                VARLEN=cu_seqlens is not None,
                                IEEE=v.dtype == torch.float32 or interpret_mode(), num_warps=4)
    ds = ds_part.sum(0).to(s.dtype)
    return ds, dv, du0, dw0_part.sum(0)
