"""Triton kernels for prefix softmax attention with one query per head (Aaren, Feng et al. 2024).

One program per (sequence, head, block of value channels) walks the sequence in chunks of ``BT`` steps.
Forward, per chunk: running max ``m_t = max(m_carry, cummax(s))``, weights ``P[t, i] = exp(s_i - m_t)``
(``i <= t``, all ``<= 1``), ``u_t = exp(m_carry - m_t) u_carry + P @ v``, ``w_t`` likewise with row sums,
``o_t = u_t / w_t``; ``lse_t = m_t + log w_t`` is saved for the backward.

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

from seqlab.kernels._dispatch import interpret_mode


@triton.jit
def _max_combine(a, b):
    return tl.maximum(a, b)


@triton.jit
def _pa_fwd_kernel(s, v, o, lse, m0, u0, w0, mT, uT, wT, cu, T, H: tl.constexpr, V: tl.constexpr,
                   BT: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, VARLEN: tl.constexpr,
                   IEEE: tl.constexpr):
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
    if HAS_H0:
        b_m = tl.load(m0 + i_nh)
        b_u = tl.load(u0 + i_nh * V + o_v, mask=mask_v, other=0.0)
        b_w = tl.load(w0 + i_nh)
    else:
        b_m = tl.full([], float("-inf"), tl.float32)
        b_u = tl.zeros([BV], dtype=tl.float32)
        b_w = tl.full([], 0.0, tl.float32)
    causal = o_t[:, None] >= o_t[None, :]
    for start in range(0, L, BT):
        t = start + o_t
        mask_t = t < L
        rows = bos + t
        b_s = tl.load(s + rows * H + i_h, mask=mask_t, other=float("-inf")).to(tl.float32)
        b_mt = tl.maximum(tl.associative_scan(b_s, 0, _max_combine), b_m)  # [BT]
        b_p = tl.where(causal, tl.exp(b_s[None, :] - b_mt[:, None]), 0.0)  # [BT, BT]
        b_r = tl.exp(b_m - b_mt)
        p_v = v + (rows[:, None] * H + i_h) * V + o_v[None, :]
        mask2 = mask_t[:, None] & mask_v[None, :]
        b_v = tl.load(p_v, mask=mask2, other=0.0).to(tl.float32)
        if IEEE:
            b_pv = tl.dot(b_p, b_v, input_precision="ieee")
        else:
            b_pv = tl.dot(b_p, b_v)
        b_ut = b_r[:, None] * b_u[None, :] + b_pv
        b_wt = b_r * b_w + tl.sum(b_p, 1)
        tl.store(o + (rows[:, None] * H + i_h) * V + o_v[None, :], (b_ut / b_wt[:, None]).to(o.dtype.element_ty),
                 mask=mask2)
        if i_v == 0:
            tl.store(lse + rows * H + i_h, b_mt + tl.log(b_wt), mask=mask_t)
        last = tl.minimum(L - start, BT) - 1
        sel = o_t == last
        b_m = tl.max(tl.where(sel, b_mt, float("-inf")), 0)
        b_u = tl.sum(tl.where(sel[:, None], b_ut, 0.0), 0)
        b_w = tl.sum(tl.where(sel, b_wt, 0.0), 0)
    if i_v == 0:
        tl.store(mT + i_nh, b_m)
        tl.store(wT + i_nh, b_w)
    tl.store(uT + i_nh * V + o_v, b_u, mask=mask_v)


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
        b_q = tl.where(upper & mask_t[None, :], tl.exp(b_l[:, None] - b_l[None, :]), 0.0)  # [BT(i), BT(t)]
        b_rc = tl.exp(b_l - b_lc)
        if IEEE:
            b_zt = tl.dot(b_q, b_do, input_precision="ieee")
        else:
            b_zt = tl.dot(b_q, b_do)
        b_zt += b_rc[:, None] * b_z[None, :]
        b_yt = tl.sum(b_q * b_delta[None, :], 1) + b_rc * b_y
        b_e = tl.exp(b_s - b_l)
        tl.store(dv + ptr, (b_e[:, None] * b_zt).to(dv.dtype.element_ty), mask=mask2)
        tl.store(ds_part + tl.cast(i_v, tl.int64) * BTH + rows * H + i_h,
                 b_e * (tl.sum(b_v * b_zt, 1) - b_yt), mask=mask_t)
        sel = o_t == 0
        b_lc = tl.sum(tl.where(sel, b_l, 0.0), 0)
        b_z = tl.sum(tl.where(sel[:, None], b_zt, 0.0), 0)
        b_y = tl.sum(tl.where(sel, b_yt, 0.0), 0)
    if HAS_H0:
        b_a = tl.exp(tl.load(m0 + i_nh) - b_lc)
        tl.store(du0 + i_nh * V + o_v, b_a * b_z, mask=mask_v)
        tl.store(dw0_part + i_v * NH + i_nh, -b_a * b_y)


def _cfg(V: int) -> tuple[int, int]:
    BT = 64
    BV = min(16, max(16, triton.next_power_of_2(V)))  # many programs: the chunk loop is latency-bound
    return BT, BV


def prefix_attention_fwd(s, v, m0, u0, w0, cu_seqlens):
    """Launch the forward; returns (o, m_T, u_T, w_T, lse)."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BT, BV = _cfg(V)
    s = s.contiguous()
    o = torch.empty_like(v)
    lse = torch.empty(B, T, H, device=v.device, dtype=torch.float32)
    mT = torch.empty(N, H, device=v.device, dtype=torch.float32)
    wT = torch.empty_like(mT)
    uT = torch.empty(N, H, V, device=v.device, dtype=torch.float32)
    grid = (triton.cdiv(V, BV), N * H)
    _pa_fwd_kernel[grid](s, v, o, lse, m0, u0, w0, mT, uT, wT, cu_seqlens, T, H=H, V=V, BT=BT, BV=BV,
                         HAS_H0=m0 is not None, VARLEN=cu_seqlens is not None,
                         IEEE=v.dtype == torch.float32 or interpret_mode(), num_warps=4, num_stages=3)
    return o, mT, uT, wT, lse


def prefix_attention_bwd(s, v, o, lse, m0, mT, cu_seqlens, do, duT, dwT):
    """Launch the backward; returns (ds, dv, du0, dw0)."""
    B, T, H, V = v.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    BT, BV = _cfg(V)
    NV = triton.cdiv(V, BV)
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
