"""Triton path of gated linear attention with a vector decay (GLA), chunk-parallel (fla ``ops/gla/chunk.py``).

Layout: :class:`~seqlab.kernels.gla.chunk_layout.ChunkLayout` (padded chunks of 64, ``[NT, C, H, D]``);
``gc`` is the in-chunk cumulative log decay (float32), ``h_c`` the state entering chunk ``c``.

Forward
    1. ``_gla_fwd_h_kernel`` (one program per sequence, head, value block; sequential over the chunks of the
       sequence, state in registers): stores ``h_c`` and ``h_{c+1} = exp(gc_C) * h_c + (k exp(gc_C - gc))^T v``.
    2. ``_gla_fwd_o_kernel`` (one program per chunk, head, value block; all chunks in parallel):
       ``o = (q exp(gc)) h_c + A v`` with the intra-chunk scores formed per query sub-chunk of 16 (GLA paper
       section 4.2, secondary-level chunking): decay split at the first step ``r`` of the query sub-chunk,
       ``q_i exp(gc_i - gc_r)`` (<= 1) times ``k_j exp(gc_r - gc_j)`` (<= 1 for earlier sub-chunks; inside the
       diagonal sub-chunk the factor is the decay over at most 15 steps, clamped at ``exp(80)``: exact while 15
       consecutive steps decay by less than e^-80 per channel, which any sigmoid-parameterised gate satisfies).
Backward
    3. ``_gla_bwd_dh_kernel`` (sequential over chunks in reverse): the gradient of the state leaving every
       chunk, ``dH_{c-1} = exp(gc_C) * dH_c + scale (q exp(gc))^T do_c``, starting from ``d h_T``.
    4. With every ``h_c`` and ``dH_c`` known, the chunks are independent: the gradient of the chunk-local
       function ``(q, k, v, g, h_c) -> (o_c, h_{c+1})`` against ``(do_c, dH_c)`` gives dq, dk, dv, dg of the
       chunk and ``dh_c`` (= ``d h0`` at a sequence's first chunk). It is evaluated for all chunks at once with
       batched PyTorch autograd on the stable log-space form (``reference.intra_chunk_scores``), float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.gla.chunk_layout import ChunkLayout
from seqlab.kernels.gla.reference import intra_chunk_scores

CHUNK = 64
SUB = 16


@triton.jit
def _gla_fwd_h_kernel(k, v, gc, hs, h0, ht, coff, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
                      IEEE: tl.constexpr):
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_s = (o_k[:, None] * V + o_v[None, :])
    if HAS_H0:
        b_h = tl.load(h0 + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=mask_kv, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(c0, c1):
        tl.store(hs + (c * H + i_h) * K * V + p_s, b_h, mask=mask_kv)
        rows = c * BT + o_t
        pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
        b_g = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
        b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
        b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
        b_kd = b_k * tl.exp(b_gl[None, :] - b_g)
        if IEEE:
            b_h = b_h * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_kd), b_v.to(tl.float32), input_precision="ieee")
        else:
            b_h = b_h * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_kd).to(b_v.dtype), b_v)
    tl.store(ht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, b_h, mask=mask_kv)


@triton.jit
def _gla_fwd_o_kernel(q, k, v, gc, hs, o, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = tl.cast(i_c, tl.int64)
    o_k, o_v, o_t, o_c = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT), tl.arange(0, BC)
    mask_k, mask_v = o_k < K, o_v < V
    b_h = tl.load(hs + (c * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :],
                  mask=mask_k[:, None] & mask_v[None, :], other=0.0)
    rows = c * BT + o_t
    b_k = tl.load(k + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=mask_k[None, :], other=0.0).to(tl.float32)
    b_g = tl.load(gc + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=mask_k[None, :], other=0.0)
    b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
    for s in tl.static_range(0, BT // BC):
        rc = c * BT + s * BC + o_c
        pk = (rc[:, None] * H + i_h) * K + o_k[None, :]
        b_qc = tl.load(q + pk, mask=mask_k[None, :], other=0.0).to(tl.float32) * scale
        b_gcc = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
        b_ref = tl.load(gc + ((c * BT + s * BC) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
        b_qr = b_qc * tl.exp(b_gcc - b_ref[None, :])
        b_kr = b_k * tl.exp(tl.minimum(b_ref[None, :] - b_g, 80.0))
        b_qi = b_qc * tl.exp(b_gcc)
        if IEEE:
            b_a = tl.dot(b_qr, tl.trans(b_kr), input_precision="ieee")  # [BC, BT]
            b_a = tl.where((s * BC + o_c)[:, None] >= o_t[None, :], b_a, 0.0)
            b_o = tl.dot(b_a, b_v.to(tl.float32), input_precision="ieee") + tl.dot(b_qi, b_h, input_precision="ieee")
        else:
            b_a = tl.dot(b_qr, tl.trans(b_kr))
            b_a = tl.where((s * BC + o_c)[:, None] >= o_t[None, :], b_a, 0.0)
            b_o = tl.dot(b_a.to(b_v.dtype), b_v) + tl.dot(b_qi, b_h)
        tl.store(o + (rc[:, None] * H + i_h) * V + o_v[None, :], b_o.to(o.dtype.element_ty), mask=mask_v[None, :])


@triton.jit
def _gla_bwd_dh_kernel(q, gc, do, dhs, dht, coff, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_s = (o_k[:, None] * V + o_v[None, :])
    b_dh = tl.load(dht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=mask_kv, other=0.0)
    for i in range(c1 - c0):
        c = c1 - 1 - i
        tl.store(dhs + (c * H + i_h) * K * V + p_s, b_dh, mask=mask_kv)
        rows = c * BT + o_t
        pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_q = tl.load(q + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
        b_g = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
        b_do = tl.load(do + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
        b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
        b_qd = b_q * tl.exp(b_g) * scale
        if IEEE:
            b_dh = b_dh * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_qd), b_do.to(tl.float32), input_precision="ieee")
        else:
            b_dh = b_dh * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_qd).to(b_do.dtype), b_do)


def _blocks(K: int, V: int) -> tuple[int, int, int]:
    BK = max(16, triton.next_power_of_2(K))
    BV = min(32 if BK >= 128 else 64, max(16, triton.next_power_of_2(V)))
    return BK, BV, (8 if BK >= 128 else 4)


def _ieee(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 or interpret_mode()


def _fwd_states(kc, vc, gcc, h0, lay: ChunkLayout, H: int, K: int, V: int):
    """States entering every chunk ``[NT, H, K, V]`` and the final states ``[N, H, K, V]`` (float32)."""
    BK, BV, nw = _blocks(K, V)
    hs = torch.empty(lay.NT, H, K, V, device=kc.device, dtype=torch.float32)
    ht = torch.empty(lay.N, H, K, V, device=kc.device, dtype=torch.float32)
    _gla_fwd_h_kernel[(triton.cdiv(V, BV), lay.N, H)](
        kc, vc, gcc, hs, h0, ht, lay.chunk_offsets, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV,
        HAS_H0=h0 is not None, IEEE=_ieee(kc), num_warps=nw, num_stages=1)
    return hs, ht


def gla_fwd(q, k, v, g, h0, cu_seqlens, scale, mode):
    """Forward launch (``mode`` "chunk" and "fused_recurrent" share it); returns (o, final state)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    lay = ChunkLayout(B, T, cu_seqlens, q.device, CHUNK)
    qc, kc, vc = lay.to_chunks(q), lay.to_chunks(k), lay.to_chunks(v)
    gcc = lay.to_chunks(g, torch.float32).cumsum(1).contiguous()  # [NT, C, H, K]
    hs, ht = _fwd_states(kc, vc, gcc, h0, lay, H, K, V)
    oc = torch.empty_like(vc)
    BK, BV, nw = _blocks(K, V)
    if lay.NT:
        _gla_fwd_o_kernel[(triton.cdiv(V, BV), lay.NT, H)](
            qc, kc, vc, gcc, hs, oc, scale, H=H, K=K, V=V, BT=CHUNK, BC=SUB, BK=BK, BV=BV, IEEE=_ieee(q),
            num_warps=nw, num_stages=1)
    return lay.from_chunks(oc).contiguous(), ht


def _local(q, k, v, g, h, scale):
    """Chunk-local map ``(q, k, v, g, h_c) -> (o_c, h_{c+1})`` on ``[NT, C, H, *]`` float32, all chunks at once."""
    q, k, v, g = (x.transpose(1, 2) for x in (q, k, v, g))  # [NT, H, C, *]
    q = q * scale
    gc = g.cumsum(-2)
    o = intra_chunk_scores(q, k, gc, SUB) @ v + (q * gc.exp()) @ h
    gl = gc[..., -1:, :]
    hn = gl.transpose(-1, -2).exp() * h + (k * (gl - gc).exp()).transpose(-1, -2) @ v
    return o.transpose(1, 2), hn


def gla_bwd(q, k, v, g, h0, cu_seqlens, scale, do, dht):
    """Backward: Triton state passes (forward states, reverse state gradients) + batched chunk-local autograd."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    lay = ChunkLayout(B, T, cu_seqlens, q.device, CHUNK)
    f32 = torch.float32
    qc, kc, vc, gc_in = (lay.to_chunks(x, f32) for x in (q, k, v, g))
    gcc = gc_in.cumsum(1).contiguous()
    hs, _ = _fwd_states(kc, vc, gcc, h0, lay, H, K, V)
    doc = lay.to_chunks(do, f32)
    dhs = torch.empty_like(hs)
    BK, BV, nw = _blocks(K, V)
    _gla_bwd_dh_kernel[(triton.cdiv(V, BV), lay.N, H)](
        qc, gcc, doc, dhs, dht, lay.chunk_offsets, scale, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV, IEEE=True,
        num_warps=nw, num_stages=1)
    xs = [x.detach().requires_grad_() for x in (qc, kc, vc, gc_in, hs)]
    with torch.enable_grad():
        o, hn = _local(*xs, scale)
        dq, dk, dv, dg, dh = torch.autograd.grad((o, hn), xs, (doc, dhs))
    dh0 = lay.first_chunk_state(dh, dht)
    return (*(lay.from_chunks(d).to(x.dtype) for d, x in zip((dq, dk, dv, dg), (q, k, v, g))),
            dh0 if h0 is not None else None)
