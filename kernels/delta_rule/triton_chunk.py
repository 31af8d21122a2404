"""Triton path of the (gated) delta rule.

Forward: the WY factors of every chunk (``A``, the UT transform ``T = (I + A)^{-1}``, ``w = T beta exp(gc) k``,
``u = T beta v``; fla ``ops/delta_rule/wy_fast.py``) are formed with batched PyTorch matmuls and a batched
triangular solve, all chunks in parallel. One Triton program per (sequence, head, block of value channels)
then runs the chunk recurrence with the state in registers (fla ``ops/common/chunk_delta_h.py`` fused with
``chunk_o.py``): ``v' = u - w S``, ``o = scale (q exp(gc) S + (q k^T * Gamma) v')``,
``S <- exp(gc_C) S + (k exp(gc_C - gc))^T v'``.

Backward: recomputes the chunked PyTorch form (``reference.delta_rule_chunked``) under autograd, in float32.
It is exact but not a hand-written Triton backward (see docs/results.md, Kernels II).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.delta_rule.reference import delta_rule_chunked
from seqlab.kernels.gla.segments import per_sequence

CHUNK = 64


def _wy(k, v, beta, g, C=CHUNK):
    """Per-chunk WY factors on a dense batch: returns w [B,T,H,K], u [B,T,H,V], gc [B,T,H] (float32)."""
    B, T, H, K = k.shape
    V = v.shape[-1]
    pad = (-T) % C
    N = (T + pad) // C

    def prep(x):
        x = F.pad(x.float(), (0, 0, 0, 0, 0, pad))
        return x.view(B, N, C, H, -1).permute(0, 3, 1, 2, 4)

    kk, vv, b = prep(k), prep(v), prep(beta[..., None])
    gc = prep(g[..., None]).cumsum(-2) if g is not None else torch.zeros_like(b)
    causal = torch.ones(C, C, dtype=torch.bool, device=k.device).tril()
    gam = (gc - gc.transpose(-1, -2)).masked_fill(~causal, float("-inf")).exp()
    A = (b * (kk @ kk.transpose(-1, -2)) * gam).tril(-1)
    eye = torch.eye(C, dtype=torch.float32, device=k.device)
    Tm = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False, unitriangular=True)
    u = Tm @ (b * vv)
    w = Tm @ (b * gc.exp() * kk)

    def back(x):
        return x.permute(0, 2, 3, 1, 4).reshape(B, N * C, H, -1)[:, :T].contiguous()

    return back(w), back(u), back(gc)[..., 0].contiguous()


@triton.jit
def _delta_fwd_kernel(q, k, w, u, gc, o, h0, ht, cu, T, scale, H: tl.constexpr, K: tl.constexpr,
                      V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
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
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    o_t = tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_h = (tl.cast(i_nh, tl.int64) * K + o_k[:, None]) * V + o_v[None, :]
    if HAS_H0:
        b_h = tl.load(h0 + p_h, mask=mask_kv, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    causal = o_t[:, None] >= o_t[None, :]
    for start in range(0, L, BT):
        t = start + o_t
        mask_t = t < L
        rows = bos + t
        pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
        pv = (rows[:, None] * H + i_h) * V + o_v[None, :]
        mtk = mask_t[:, None] & mask_k[None, :]
        mtv = mask_t[:, None] & mask_v[None, :]
        b_q = tl.load(q + pk, mask=mtk, other=0.0).to(tl.float32) * scale
        b_k = tl.load(k + pk, mask=mtk, other=0.0).to(tl.float32)
        b_w = tl.load(w + pk, mask=mtk, other=0.0)
        b_u = tl.load(u + pv, mask=mtv, other=0.0)
        b_g = tl.load(gc + rows * H + i_h, mask=mask_t, other=0.0)
        b_glast = tl.sum(tl.where(t == tl.minimum(L, start + BT) - 1, b_g, 0.0), 0)
        if IEEE:
            b_vn = b_u - tl.dot(b_w, b_h, input_precision="ieee")
            b_a = tl.dot(b_q, tl.trans(b_k), input_precision="ieee")
        else:
            b_vn = b_u - tl.dot(b_w, b_h)
            b_a = tl.dot(b_q, tl.trans(b_k))
        b_a = tl.where(causal, b_a * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0)), 0.0)
        b_qd = b_q * tl.exp(b_g)[:, None]
        b_kd = b_k * tl.where(mask_t, tl.exp(b_glast - b_g), 0.0)[:, None]
        if IEEE:
            b_o = tl.dot(b_qd, b_h, input_precision="ieee") + tl.dot(b_a, b_vn, input_precision="ieee")
            b_h = b_h * tl.exp(b_glast) + tl.dot(tl.trans(b_kd), b_vn, input_precision="ieee")
        else:
            b_o = tl.dot(b_qd, b_h) + tl.dot(b_a, b_vn)
            b_h = b_h * tl.exp(b_glast) + tl.dot(tl.trans(b_kd), b_vn)
        tl.store(o + pv, b_o.to(o.dtype.element_ty), mask=mtv)
    tl.store(ht + p_h, b_h, mask=mask_kv)


def delta_rule_fwd(q, k, v, beta, g, h0, cu_seqlens, scale, mode):
    """Forward launch (``mode`` "chunk" and "fused_recurrent" share it); returns (o, final state)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    if cu_seqlens is None:
        w, u, gc = _wy(k, v, beta, g)
    else:
        offs = cu_seqlens.tolist()
        parts = [_wy(k[:, a:b], v[:, a:b], beta[:, a:b], None if g is None else g[:, a:b])
                 for a, b in zip(offs[:-1], offs[1:])]
        w, u, gc = (torch.cat([p[i] for p in parts], 1) for i in range(3))
    o = torch.empty_like(v)
    ht = torch.empty(N, H, K, V, device=q.device, dtype=torch.float32)
    BK = max(16, triton.next_power_of_2(K))
    BV = min(32, max(16, triton.next_power_of_2(V)))
    grid = (triton.cdiv(V, BV), N * H)
    _delta_fwd_kernel[grid](q, k, w, u, gc, o, h0, ht, cu_seqlens, T, scale, H=H, K=K, V=V, BT=CHUNK, BK=BK,
                            BV=BV, HAS_H0=h0 is not None, VARLEN=cu_seqlens is not None,
                            IEEE=q.dtype == torch.float32 or interpret_mode(), num_warps=8 if BK >= 128 else 4, num_stages=1)
    return o, ht


def delta_rule_bwd(q, k, v, beta, g, h0, cu_seqlens, scale, do, dht):
    """Backward by recomputing the chunked PyTorch form under autograd (float32)."""
    N = q.shape[0] if cu_seqlens is None else cu_seqlens.numel() - 1
    if h0 is None:
        h0 = q.new_zeros(N, q.shape[2], q.shape[3], v.shape[3], dtype=torch.float32)
    xs = [x.detach().requires_grad_() for x in (q, k, v, beta, h0)]
    gx = None if g is None else g.detach().requires_grad_()
    with torch.enable_grad():
        def run(q_, k_, v_, b_, g_, h_, out_):
            return delta_rule_chunked(q_, k_, v_, b_, g_, scale, h_, out_)
        o, ht = per_sequence(run, (*xs[:4], gx), xs[4], cu_seqlens, True)
        ins = xs + ([gx] if gx is not None else [])
        grads = torch.autograd.grad((o, ht), ins, (do.float(), dht), allow_unused=True)
    grads = [torch.zeros_like(x) if d is None else d.to(x.dtype) for d, x in zip(grads, ins)]
    dq, dk, dv, db, dh0 = grads[:5]
    dg = grads[5] if g is not None else None
    return dq, dk, dv, db, dg, dh0
