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
Backward (fla ``chunk_gla_bwd``: dA, dv, intra / inter dq-dk, dg)
    3. ``_gla_bwd_dh_kernel`` (sequential over chunks in reverse): the gradient of the state leaving every
       chunk, ``dH_{c-1} = exp(gc_C) * dH_c + scale (q exp(gc))^T do_c``, from ``d h_T``; the last value is
       ``d h0``.
    4. ``_gla_bwd_da_kernel`` (all chunks): intra-chunk scores ``A`` (as in the forward) and
       ``dA = scale (do v^T)`` (causal), ``[NT, H, C, C]`` float32 scratch.
    5. ``_gla_bwd_dv_kernel``: ``dv = A^T do + (k exp(gc_C - gc)) dH_c``.
    6. ``_gla_bwd_dqk_kernel``: ``dq = scale exp(gc) (do h_c^T) + dA (k exp(gc_i - gc_j))`` and
       ``dk = exp(gc_C - gc) (v dH_c^T) + dA^T (q exp(gc_i - gc_j))`` with the sub-chunk decay split.
    7. ``dg``: the loss sees the global cumulative decay ``Gamma`` only through ``q exp(Gamma)``,
       ``k exp(-Gamma)`` and the final state, so ``dL/dGamma_t = q_t dq_t - k_t dk_t + [t = T] sum_v S_T dS_T``
       (per key channel) and ``dg_t = sum_{s >= t} dL/dGamma_s`` inside each sequence (PyTorch cumsum).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.gla.chunk_layout import ChunkLayout

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
def _gla_bwd_dh_kernel(q, gc, do, dhs, dht, dh0, coff, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
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
    tl.store(dh0 + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, b_dh, mask=mask_kv)


@triton.jit
def _gla_bwd_da_kernel(q, k, v, gc, do, A, dA, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    """Per chunk: the intra-chunk scores ``A`` (as in the forward, scale included) and
    ``dA = scale * (do v^T)`` (causal), both stored ``[NT, H, C, C]`` float32."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    c = tl.cast(i_c, tl.int64)
    o_k, o_t, o_c = tl.arange(0, BK), tl.arange(0, BT), tl.arange(0, BC)
    mask_k = o_k < K
    rows = c * BT + o_t
    pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
    b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
    b_g = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
    p_a = (c * H + i_h) * BT * BT
    for s in tl.static_range(0, BT // BC):
        rc = c * BT + s * BC + o_c
        pkc = (rc[:, None] * H + i_h) * K + o_k[None, :]
        b_qc = tl.load(q + pkc, mask=mask_k[None, :], other=0.0).to(tl.float32) * scale
        b_gcc = tl.load(gc + pkc, mask=mask_k[None, :], other=0.0)
        b_ref = tl.load(gc + ((c * BT + s * BC) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
        b_qr = b_qc * tl.exp(b_gcc - b_ref[None, :])
        b_kr = b_k * tl.exp(tl.minimum(b_ref[None, :] - b_g, 80.0))
        if IEEE:
            b_a = tl.dot(b_qr, tl.trans(b_kr), input_precision="ieee")
        else:
            b_a = tl.dot(b_qr, tl.trans(b_kr))
        b_a = tl.where((s * BC + o_c)[:, None] >= o_t[None, :], b_a, 0.0)
        tl.store(A + p_a + (s * BC + o_c)[:, None] * BT + o_t[None, :], b_a)
    b_da = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        pv = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_do = tl.load(do + pv, mask=(o_v < V)[None, :], other=0.0)
        b_v = tl.load(v + pv, mask=(o_v < V)[None, :], other=0.0)
        if IEEE:
            b_da += tl.dot(b_do.to(tl.float32), tl.trans(b_v.to(tl.float32)), input_precision="ieee")
        else:
            b_da += tl.dot(b_do, tl.trans(b_v))
    b_da = tl.where(o_t[:, None] >= o_t[None, :], b_da * scale, 0.0)
    tl.store(dA + p_a + o_t[:, None] * BT + o_t[None, :], b_da)


@triton.jit
def _gla_bwd_dv_kernel(k, gc, do, A, dhs, dv, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                       BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    """``dv = A^T do + (k exp(gc_C - gc)) dH_c`` per chunk and value block."""
    i_v, i_c, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c = tl.cast(i_c, tl.int64)
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    mask_k, mask_v = o_k < K, o_v < V
    rows = c * BT + o_t
    pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
    pv = (rows[:, None] * H + i_h) * V + o_v[None, :]
    b_a = tl.load(A + (c * H + i_h) * BT * BT + o_t[:, None] * BT + o_t[None, :])
    b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
    b_g = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
    b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
    b_do = tl.load(do + pv, mask=mask_v[None, :], other=0.0).to(tl.float32)
    b_dh = tl.load(dhs + (c * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :],
                   mask=mask_k[:, None] & mask_v[None, :], other=0.0)
    b_kd = b_k * tl.exp(b_gl[None, :] - b_g)
    if IEEE:
        b_dv = tl.dot(tl.trans(b_a), b_do, input_precision="ieee") + tl.dot(b_kd, b_dh, input_precision="ieee")
    else:
        b_dv = tl.dot(tl.trans(b_a), b_do) + tl.dot(b_kd, b_dh)
    tl.store(dv + pv, b_dv, mask=mask_v[None, :])


@triton.jit
def _gla_bwd_dqk_kernel(q, k, v, gc, do, dA, hs, dhs, dq, dk, scale, H: tl.constexpr, K: tl.constexpr,
                        V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                        IEEE: tl.constexpr):
    """Per chunk (all K channels): ``dq = scale exp(gc) (do h_c^T) + sum_j dA_ij k_j exp(gc_i - gc_j)`` and
    ``dk = exp(gc_C - gc) (v dH_c^T) + sum_i dA_ij q_i exp(gc_i - gc_j)``, the intra terms per query
    sub-chunk with the decay split at its first step (as in the forward)."""
    i_c, i_h = tl.program_id(0), tl.program_id(1)
    c = tl.cast(i_c, tl.int64)
    o_k, o_t, o_c = tl.arange(0, BK), tl.arange(0, BT), tl.arange(0, BC)
    mask_k = o_k < K
    rows = c * BT + o_t
    pk = (rows[:, None] * H + i_h) * K + o_k[None, :]
    b_k = tl.load(k + pk, mask=mask_k[None, :], other=0.0).to(tl.float32)
    b_g = tl.load(gc + pk, mask=mask_k[None, :], other=0.0)
    b_gl = tl.load(gc + ((c * BT + BT - 1) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
    p_s = (c * H + i_h) * K * V
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        mask_v = o_v < V
        b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
        b_dh = tl.load(dhs + p_s + o_k[:, None] * V + o_v[None, :], mask=mask_k[:, None] & mask_v[None, :],
                       other=0.0)
        if IEEE:
            b_dk += tl.dot(b_v.to(tl.float32), tl.trans(b_dh), input_precision="ieee")
        else:
            b_dk += tl.dot(b_v.to(tl.float32), tl.trans(b_dh))
    b_dk = b_dk * tl.exp(b_gl[None, :] - b_g)
    for s in tl.static_range(0, BT // BC):
        rc = c * BT + s * BC + o_c
        pkc = (rc[:, None] * H + i_h) * K + o_k[None, :]
        b_qc = tl.load(q + pkc, mask=mask_k[None, :], other=0.0).to(tl.float32)
        b_gcc = tl.load(gc + pkc, mask=mask_k[None, :], other=0.0)
        b_ref = tl.load(gc + ((c * BT + s * BC) * H + i_h) * K + o_k, mask=mask_k, other=0.0)
        b_dq = tl.zeros([BC, BK], dtype=tl.float32)
        for i_v in range(tl.cdiv(V, BV)):
            o_v = i_v * BV + tl.arange(0, BV)
            mask_v = o_v < V
            b_do = tl.load(do + (rc[:, None] * H + i_h) * V + o_v[None, :], mask=mask_v[None, :], other=0.0)
            b_h = tl.load(hs + p_s + o_k[:, None] * V + o_v[None, :], mask=mask_k[:, None] & mask_v[None, :],
                          other=0.0)
            if IEEE:
                b_dq += tl.dot(b_do.to(tl.float32), tl.trans(b_h), input_precision="ieee")
            else:
                b_dq += tl.dot(b_do.to(tl.float32), tl.trans(b_h))
        b_dq = b_dq * (scale * tl.exp(b_gcc))
        b_das = tl.load(dA + (c * H + i_h) * BT * BT + (s * BC + o_c)[:, None] * BT + o_t[None, :])  # [BC, BT]
        b_er = tl.exp(tl.minimum(b_ref[None, :] - b_g, 80.0))  # [BT, BK]
        b_eq = tl.exp(b_gcc - b_ref[None, :])  # [BC, BK]
        if IEEE:
            b_dq += tl.dot(b_das, b_k * b_er, input_precision="ieee") * b_eq
            b_dk += tl.dot(tl.trans(b_das), b_qc * b_eq, input_precision="ieee") * b_er
        else:
            b_dq += tl.dot(b_das, b_k * b_er) * b_eq
            b_dk += tl.dot(tl.trans(b_das), b_qc * b_eq) * b_er
        tl.store(dq + pkc, b_dq, mask=mask_k[None, :])
    tl.store(dk + pk, b_dk, mask=mask_k[None, :])


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


def _reverse_cumsum(x: torch.Tensor, cu_seqlens: torch.Tensor | None) -> torch.Tensor:
    """``y_t = sum_{s >= t} x_s`` inside every sequence of ``[B, T, ...]``."""
    if cu_seqlens is None:
        return x.flip(1).cumsum(1).flip(1)
    out = torch.zeros_like(x)
    offs = cu_seqlens.tolist()
    for a, b in zip(offs[:-1], offs[1:]):
        out[:, a:b] = x[:, a:b].flip(1).cumsum(1).flip(1)
    return out


def gla_bwd(q, k, v, g, h0, cu_seqlens, scale, do, dht):
    """Backward: state passes, then per-chunk dA / dv / dq-dk kernels; dg from
    ``dL/dGamma_t = q_t dq_t - k_t dk_t (+ S_T dS_T at the last step)`` reverse-summed over each sequence."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    lay = ChunkLayout(B, T, cu_seqlens, q.device, CHUNK)
    f32 = torch.float32
    qc, kc, vc, doc = (lay.to_chunks(x) for x in (q, k, v, do))
    gcc = lay.to_chunks(g, f32).cumsum(1).contiguous()
    ieee = _ieee(q)
    hs, ht = _fwd_states(kc, vc, gcc, h0, lay, H, K, V)
    BK, BV, nw = _blocks(K, V)
    dhs = torch.empty_like(hs)
    dh0 = torch.empty_like(ht)
    _gla_bwd_dh_kernel[(triton.cdiv(V, BV), lay.N, H)](
        qc, gcc, doc, dhs, dht, dh0, lay.chunk_offsets, scale, H=H, K=K, V=V, BT=CHUNK, BK=BK, BV=BV, IEEE=ieee,
        num_warps=nw, num_stages=1)
    A = torch.empty(lay.NT, H, CHUNK, CHUNK, device=q.device, dtype=f32)
    dA = torch.empty_like(A)
    dq = torch.empty(lay.NT, CHUNK, H, K, device=q.device, dtype=f32)
    dk = torch.empty_like(dq)
    dv = torch.empty(lay.NT, CHUNK, H, V, device=q.device, dtype=f32)
    if lay.NT:
        _gla_bwd_da_kernel[(lay.NT, H)](qc, kc, vc, gcc, doc, A, dA, scale, H=H, K=K, V=V, BT=CHUNK, BC=SUB, BK=BK,
                                        BV=BV, IEEE=ieee, num_warps=nw, num_stages=1)
        _gla_bwd_dv_kernel[(triton.cdiv(V, BV), lay.NT, H)](kc, gcc, doc, A, dhs, dv, H=H, K=K, V=V, BT=CHUNK,
                                                            BK=BK, BV=BV, IEEE=ieee, num_warps=nw, num_stages=1)
        _gla_bwd_dqk_kernel[(lay.NT, H)](qc, kc, vc, gcc, doc, dA, hs, dhs, dq, dk, scale, H=H, K=K, V=V,
                                         BT=CHUNK, BC=SUB, BK=BK, BV=BV, IEEE=ieee, num_warps=nw, num_stages=1)
    dq, dk, dv = lay.from_chunks(dq), lay.from_chunks(dk), lay.from_chunks(dv)
    dgam = q.float() * dq - k.float() * dk  # [B, T, H, K]
    last = (ht * dht).sum(-1)  # [N, H, K]
    if cu_seqlens is None:
        if T:
            dgam[:, -1] += last
    else:
        ends = cu_seqlens[1:].long() - 1
        nonempty = cu_seqlens[1:] > cu_seqlens[:-1]
        dgam[0].index_add_(0, ends[nonempty], last[nonempty])
    dg = _reverse_cumsum(dgam, cu_seqlens)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), dg.to(g.dtype), (dh0 if h0 is not None else None)
