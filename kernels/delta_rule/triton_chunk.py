"""Triton path of the (gated) delta rule, chunk-parallel (fla ``ops/gated_delta_rule/chunk.py``).

Layout: :class:`~seqlab.kernels.gla.chunk_layout.ChunkLayout` (padded chunks of 64, ``[NT, C, H, D]``; a zero
row has beta = 0 and is the identity). ``gc`` is the in-chunk cumulative log gate, ``h_c`` the state entering
chunk ``c``.

Forward
    1. WY factors of every chunk, all chunks in parallel with batched PyTorch (fla ``ops/delta_rule/wy_fast.py``):
       ``A = strict_tril(beta (k k^T) Gamma)``, ``T = (I + A)^{-1}`` (batched unit-triangular solve),
       ``w = T (beta exp(gc) k)``, ``u = T (beta v)``.
    2. ``_delta_fwd_h_kernel`` (one program per sequence, head, value block; sequential over chunks, state in
       registers; fla ``ops/common/chunk_delta_h.py``): stores ``h_c`` and ``v'_c = u - w h_c``, then
       ``h_{c+1} = exp(gc_C) h_c + (k exp(gc_C - gc))^T v'_c``.
    3. ``_delta_fwd_o_kernel`` (all chunks in parallel; fla ``ops/common/chunk_o.py``):
       ``o = scale ((q exp(gc)) h_c + ((q k^T) * Gamma, causal) v'_c)``.
Backward
    4. ``_delta_bwd_dh_kernel`` (reverse over chunks; fla ``chunk_gated_delta_rule_bwd_dhu``): with ``dH_c`` the
       gradient of the state leaving chunk ``c`` (``dH`` of the last chunk = ``d h_T``),
       ``dv'_c = (scale q k^T * Gamma)^T do_c + (k exp(gc_C - gc)) dH_c`` and
       ``dH_{c-1} = exp(gc_C) dH_c + scale (q exp(gc))^T do_c - w^T dv'_c``.
    5. With every ``h_c`` and ``dH_c`` known the chunks are independent: the gradient of the chunk-local map
       ``(q, k, v, beta, g, h_c) -> (o_c, h_{c+1})`` (WY factors included, i.e. the WY backward of fla's
       ``prepare_wy_repr_bwd``) against ``(do_c, dH_c)`` gives dq, dk, dv, dbeta, dg and ``dh_c`` (= ``d h0`` at
       a sequence's first chunk), evaluated for all chunks at once by batched PyTorch autograd in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.gla.chunk_layout import ChunkLayout

CHUNK = 64


def _wy(k, v, beta, g):
    """WY factors on chunk-layout float32 tensors ``[NT, H, C, *]``: returns w, u, gc ``[NT, H, C, 1]``, gamma."""
    C = k.shape[-2]
    b = beta[..., None]
    gc = g[..., None].cumsum(-2) if g is not None else torch.zeros_like(b)
    causal = torch.ones(C, C, dtype=torch.bool, device=k.device).tril()
    gam = (gc - gc.transpose(-1, -2)).masked_fill(~causal, float("-inf")).exp()  # [NT, H, C, C]
    A = (b * (k @ k.transpose(-1, -2)) * gam).tril(-1)
    eye = torch.eye(C, dtype=k.dtype, device=k.device)
    Tm = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False, unitriangular=True)
    return Tm @ (b * gc.exp() * k), Tm @ (b * v), gc, gam


@triton.jit
def _delta_fwd_h_kernel(k, w, u, gc, hs, vn, h0, ht, coff, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
                        IEEE: tl.constexpr):
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    if HAS_H0:
        b_h = tl.load(h0 + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=mask_kv, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(c0, c1):
        tl.store(hs + (c * H + i_h) * K * V + p_s, b_h, mask=mask_kv)
        rows = c * BT + o_t
        pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
        pv = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
        b_w = tl.load(w + pk, mask=mask_k[None, :], other=0.0)
        b_u = tl.load(u + pv, mask=mask_v[None, :], other=0.0)
        b_g = tl.load(gc + rows * H + i_h)
        b_gl = tl.load(gc + (c * BT + BT - 1) * H + i_h)
        if IEEE:
            b_vn = b_u - tl.dot(b_w, b_h, input_precision="ieee")
        else:
            b_vn = b_u - tl.dot(b_w, b_h)
        tl.store(vn + pv, b_vn, mask=mask_v[None, :])
        b_kd = b_k * tl.exp(b_gl - b_g)[:, None]
        if IEEE:
            b_h = b_h * tl.exp(b_gl) + tl.dot(tl.trans(b_kd), b_vn, input_precision="ieee")
        else:
            b_h = b_h * tl.exp(b_gl) + tl.dot(tl.trans(b_kd), b_vn)
    tl.store(ht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, b_h, mask=mask_kv)


@triton.jit
def _delta_fwd_o_kernel(q, k, vn, gc, hs, o, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                        BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = tl.cast(i_c, tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    rows = c * BT + o_t
    pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
    pv = (rows[:, None] * H + i_h) * V + o_v[None, :]
    b_h = tl.load(hs + (c * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :],
                  mask=mask_k[:, None] & mask_v[None, :], other=0.0)
    b_q = tl.load(q + pk, mask=mask_k[None, :], other=0.0).to(tl.float32) * scale
    b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
    b_vn = tl.load(vn + pv, mask=mask_v[None, :], other=0.0)
    b_g = tl.load(gc + rows * H + i_h)
    causal = o_t[:, None] >= o_t[None, :]
    if IEEE:
        b_a = tl.dot(b_q, tl.trans(b_k), input_precision="ieee")
    else:
        b_a = tl.dot(b_q, tl.trans(b_k))
    b_a = tl.where(causal, b_a * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0)), 0.0)
    b_qd = b_q * tl.exp(b_g)[:, None]
    if IEEE:
        b_o = tl.dot(b_qd, b_h, input_precision="ieee") + tl.dot(b_a, b_vn, input_precision="ieee")
    else:
        b_o = tl.dot(b_qd, b_h) + tl.dot(b_a, b_vn)
    tl.store(o + pv, b_o.to(o.dtype.element_ty), mask=mask_v[None, :])


@triton.jit
def _delta_bwd_dh_kernel(q, k, w, gc, do, dhs, dht, coff, scale, H: tl.constexpr, K: tl.constexpr,
                         V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                         IEEE: tl.constexpr):
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    causal = o_t[:, None] >= o_t[None, :]
    b_dh = tl.load(dht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=mask_kv, other=0.0)
    for i in range(c1 - c0):
        c = c1 - 1 - i
        tl.store(dhs + (c * H + i_h) * K * V + p_s, b_dh, mask=mask_kv)
        rows = c * BT + o_t
        pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_q = tl.load(q + pk, mask=mask_k[None, :], other=0.0) * scale
        b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0)
        b_w = tl.load(w + pk, mask=mask_k[None, :], other=0.0)
        b_do = tl.load(do + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
        b_g = tl.load(gc + rows * H + i_h)
        b_gl = tl.load(gc + (c * BT + BT - 1) * H + i_h)
        b_kd = b_k * tl.exp(b_gl - b_g)[:, None]
        b_qd = b_q * tl.exp(b_g)[:, None]
        if IEEE:
            b_a = tl.dot(b_q, tl.trans(b_k), input_precision="ieee")
        else:
            b_a = tl.dot(b_q, tl.trans(b_k))
        b_a = tl.where(causal, b_a * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0)), 0.0)
        if IEEE:
            b_dvn = tl.dot(tl.trans(b_a), b_do, input_precision="ieee") + tl.dot(b_kd, b_dh, input_precision="ieee")
            b_dh = (b_dh * tl.exp(b_gl) + tl.dot(tl.trans(b_qd), b_do, input_precision="ieee")
                    - tl.dot(tl.trans(b_w), b_dvn, input_precision="ieee"))
        else:
            b_dvn = tl.dot(tl.trans(b_a), b_do) + tl.dot(b_kd, b_dh)
            b_dh = b_dh * tl.exp(b_gl) + tl.dot(tl.trans(b_qd), b_do) - tl.dot(tl.trans(b_w), b_dvn)


def _blocks(K: int, V: int) -> tuple[int, int, int]:
    BK = max(16, triton.next_power_of_2(K))
    BV = min(32 if BK >= 128 else 64, max(16, triton.next_power_of_2(V)))
    return BK, BV, (8 if BK >= 128 else 4)


def _chunk_inputs(k, v, beta, g, lay: ChunkLayout):
    """Chunk-layout float32 WY factors as ``[NT, C, H, *]`` contiguous tensors: (w, u, gc [NT, C, H])."""
    f32 = torch.float32
    kc, vc = (lay.to_chunks(x, f32).transpose(1, 2) for x in (k, v))
    bc = lay.to_chunks(beta, f32).transpose(1, 2)
    gcin = None if g is None else lay.to_chunks(g, f32).transpose(1, 2)
    w, u, gc, _ = _wy(kc, vc, bc, gcin)
    return w.transpose(1, 2).contiguous(), u.transpose(1, 2).contiguous(), gc[..., 0].transpose(1, 2).contiguous()


def _fwd_states(kc, w, u, gc, h0, lay: ChunkLayout, H, K, V, ieee):
    BK, BV, nw = _blocks(K, V)
    hs = torch.empty(lay.NT, H, K, V, device=kc.device, dtype=torch.float32)
    vn = torch.empty_like(u)
    ht = torch.empty(lay.N, H, K, V, device=kc.device, dtype=torch.float32)
    _delta_fwd_h_kernel[(triton.cdiv(V, BV), lay.N, H)](
        kc, w, u, gc, hs, vn, h0, ht, lay.chunk_offsets, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV,
        HAS_H0=h0 is not None, IEEE=ieee, num_warps=nw, num_stages=1)
    return hs, vn, ht


def _ieee(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 or interpret_mode()


def delta_rule_fwd(q, k, v, beta, g, h0, cu_seqlens, scale, mode):
    """Forward launch (``mode`` "chunk" and "fused_recurrent" share it); returns (o, final state)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    lay = ChunkLayout(B, T, cu_seqlens, q.device, CHUNK)
    w, u, gc = _chunk_inputs(k, v, beta, g, lay)
    kc = lay.to_chunks(k)
    hs, vn, ht = _fwd_states(kc, w, u, gc, h0, lay, H, K, V, _ieee(q))
    oc = torch.empty(lay.NT, CHUNK, H, V, device=q.device, dtype=v.dtype)
    BK, BV, nw = _blocks(K, V)
    if lay.NT:
        _delta_fwd_o_kernel[(triton.cdiv(V, BV), lay.NT, H)](
            lay.to_chunks(q), kc, vn, gc, hs, oc, scale, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV, IEEE=_ieee(q),
            num_warps=nw, num_stages=1)
    return lay.from_chunks(oc).contiguous(), ht


def _local(q, k, v, beta, g, h, scale):
    """Chunk-local map ``(q, k, v, beta, g, h_c) -> (o_c, h_{c+1})`` on ``[NT, C, H, *]`` float32."""
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # [NT, H, C, *]
    beta = beta.transpose(1, 2)
    g = None if g is None else g.transpose(1, 2)
    w, u, gc, gam = _wy(k, v, beta, g)
    vn = u - w @ h
    q = q * scale
    o = (q * gc.exp()) @ h + ((q @ k.transpose(-1, -2)) * gam) @ vn
    gl = gc[..., -1:, :]
    hn = gl.exp() * h + (k * (gl - gc).exp()).transpose(-1, -2) @ vn
    return o.transpose(1, 2), hn


def delta_rule_bwd(q, k, v, beta, g, h0, cu_seqlens, scale, do, dht):
    """Backward: Triton state passes (forward states, reverse state gradients) + batched chunk-local autograd."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    lay = ChunkLayout(B, T, cu_seqlens, q.device, CHUNK)
    f32 = torch.float32
    w, u, gc = _chunk_inputs(k, v, beta, g, lay)
    qc, kc, vc, doc = (lay.to_chunks(x, f32) for x in (q, k, v, do))
    bc = lay.to_chunks(beta, f32)
    ieee = _ieee(q)
    hs, _, _ = _fwd_states(kc, w, u, gc, h0, lay, H, K, V, ieee)
    dhs = torch.empty_like(hs)
    BK, BV, nw = _blocks(K, V)
    _delta_bwd_dh_kernel[(triton.cdiv(V, BV), lay.N, H)](
        qc, kc, w, gc, doc, dhs, dht, lay.chunk_offsets, scale, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV,
        IEEE=ieee, num_warps=nw, num_stages=1)
    ins = [qc, kc, vc, bc] + ([] if g is None else [lay.to_chunks(g, f32)]) + [hs]
    xs = [x.detach().requires_grad_() for x in ins]
    with torch.enable_grad():
        gx = xs[4] if g is not None else None
        o, hn = _local(*xs[:4], gx, xs[-1], scale)
        grads = torch.autograd.grad((o, hn), xs, (doc, dhs))
    dq, dk, dv, db = (lay.from_chunks(d).to(x.dtype) for d, x in zip(grads[:4], (q, k, v, beta)))
    dg = lay.from_chunks(grads[4]).to(g.dtype) if g is not None else None
    dh0 = lay.first_chunk_state(grads[-1], dht)
    return dq, dk, dv, db, dg, dh0
