"""Triton path of the (gated) delta rule: chunked WY form, forward and backward as Triton kernels.

Structure after fla 0.6.0 (fla-org/flash-linear-attention), written anew for seqlab's padded chunk layout:
``fla/ops/gated_delta_rule/chunk.py`` and ``fla/ops/delta_rule/chunk.py`` (pipeline),
``fla/ops/gated_delta_rule/chunk_fwd.py`` + ``fla/ops/common/chunk_scaled_dot_kkt.py`` +
``fla/ops/utils/solve_tril.py`` (A and its block-wise inverse), ``fla/ops/gated_delta_rule/wy_fast.py`` +
``fla/ops/delta_rule/wy_fast.py`` (w, u and the WY backward), ``fla/ops/common/chunk_delta_h.py`` (state passes),
``fla/ops/common/chunk_o.py`` (output, dv local, dq/dk/dw). Math: Yang et al. 2024, "Parallelizing Linear
Transformers with the Delta Rule over Sequence Length", Sec. 3 (WY representation, UT transform); gated form
Yang et al. 2025, "Gated Delta Networks".

Layout: every sequence cut into padded chunks of ``C = 64`` rows, tensors ``[NT, C, H, D]`` (a zero row has
beta = 0 and log gate 0, the identity step, so no kernel needs sequence bounds):
:class:`~seqlab.kernels.gla.chunk_layout.ChunkLayout` with ``cu_seqlens``, ``_DenseChunks`` (device ops only, a free
view when ``T % 64 == 0``) without. Memory: ``Ai``, ``w``, every chunk's entering state ``h`` and ``v'`` are
returned by the forward op and kept for the backward (``64 / V + K / V + 1 + K / 64`` times the size of ``v``, in
the input dtype: 4.5x for K = V = 128), where fla keeps only ``Ai`` and recomputes ``w``, ``u``, ``h``, ``v'``. Per chunk, ``gc`` = in-chunk cumulative log gate (0 without gate), ``b`` = beta,
``Gamma_ij = exp(gc_i - gc_j)``, ``h`` = state entering the chunk, ``h'`` = state leaving it.

Forward (``delta_rule_fwd``)
    1. ``_kkt_solve_kernel`` (chunks in parallel): ``A = strict_tril(b_i (k_i . k_j) Gamma_ij)`` as ten 16 x 16
       blocks, the four diagonal blocks inverted by forward substitution, then merged block-wise into
       ``Ai = (I + A)^{-1}``.
    2. ``_wu_kernel``: ``w = Ai (b exp(gc) k)``, ``u = Ai (b v)``.
    3. ``_fwd_h_kernel`` (sequential over the chunks of a sequence; one program per sequence, head, value block):
       stores ``h``, ``v' = u - w h``, then ``h' = exp(gc_C) h + (k exp(gc_C - gc))^T v'``.
    4. ``_fwd_o_kernel`` (chunks in parallel): ``o = scale ((q exp(gc)) h + (q k^T * Gamma, causal) v')``.
Backward (``delta_rule_bwd``; ``Ai``, ``w``, every ``h`` and ``v'`` are kept from the forward)
    5. ``_bwd_dv_local_kernel``: ``dv_loc = (scale q k^T * Gamma, causal)^T do``.
    6. ``_bwd_dhu_kernel`` (reverse over chunks): stores ``dh'``, ``dv' = (k exp(gc_C - gc)) dh' + dv_loc``,
       ``dh = exp(gc_C) dh' + scale (q exp(gc))^T do - w^T dv'``; ``d h0`` is ``dh`` at a sequence's start.
    7. ``_bwd_dqkwg_kernel``: ``dq``, the non-WY part of ``dk``, ``dw = -dv' h^T`` and the per-row log-gate
       gradient ``q.dq - k.dk`` (+ ``exp(gc_C) <h, dh'> + sum k.dk_inter`` at the chunk's last row).
    8. ``_wy_bwd_kernel``: gradients through ``w``, ``u`` and ``Ai`` (``dA = -Ai^T dAi Ai^T``): adds to dk, gives
       dv, dbeta, and finishes dg (WY part, then the reverse cumulative sum inside the chunk).

Hopper note (fla issues #640 and #984: wrong gradients from Triton 3.4 - 3.7.0 on sm_90, traced to ``tl.trans``
of a ``tl.dot`` result fed into another ``tl.dot``; Triton issue #6124): no kernel here transposes a computed
tensor. Transposed operands are loaded transposed or are ``tl.trans`` of a tensor just loaded from memory; where a
transposed product of computed matrices is needed (``ds^T``, ``dA^T``) it is accumulated directly from loaded
operands (``dsT = v' do^T``, ``dA^T = -Ai dAi^T Ai``).

Precision: dot operands are the input dtype (bf16 / fp16 tensor cores; float32 inputs: ``tf32x3`` on the GPU,
``ieee`` under the interpreter), accumulation float32; the state carried through the sequential passes is float32;
stored intermediates (``Ai``, ``w``, ``u``, ``h``, ``v'``, ``dh'``, partial gradients) use the input dtype as in
fla. Final state and ``d h0`` are float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from seqlab.kernels._dispatch import cdiv, interpret_mode, next_pow2
from seqlab.kernels.gla.chunk_layout import ChunkLayout

CHUNK = 64


@triton.jit
def _inv_lower16(a, o_i):
    """``(I + a)^{-1}`` of a strictly lower-triangular ``[16, 16]`` block (forward substitution, row by row).

    With ``N = (I + a)^{-1} - I``: ``N_i = -a_i - sum_{m<i} a_im N_m``; rows 0 and 1 are ``-a_0 = 0`` and ``-a_1``.
    """
    n = -a
    for i in range(2, 16):
        row = tl.sum(tl.where((o_i == i)[:, None], -a, 0.0), 0)
        row = row + tl.sum(row[:, None] * n, 0)
        n = tl.where((o_i == i)[:, None], row[None, :], n)
    return n + tl.where(o_i[:, None] == o_i[None, :], 1.0, 0.0)


@triton.jit
def _store16(ai, rows, col0, o_i, x, H: tl.constexpr, i_h, BT: tl.constexpr):
    tl.store(ai + (rows[:, None] * H + i_h) * BT + col0 + o_i[None, :], x.to(ai.dtype.element_ty))


@triton.jit
def _kkt_solve_kernel(k, beta, gc, ai, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
                      USE_G: tl.constexpr, PREC: tl.constexpr, SPREC: tl.constexpr):
    """One program per (chunk, head): ``Ai = (I + strict_tril(b (k k^T) Gamma))^{-1}`` ``[BT, BT]`` (BT = 64)."""
    i_c, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    o_i = tl.arange(0, 16)
    r0 = i_c * BT + o_i
    r1 = r0 + 16
    r2 = r0 + 32
    r3 = r0 + 48
    a00 = tl.zeros([16, 16], dtype=tl.float32)
    a10 = tl.zeros([16, 16], dtype=tl.float32)
    a11 = tl.zeros([16, 16], dtype=tl.float32)
    a20 = tl.zeros([16, 16], dtype=tl.float32)
    a21 = tl.zeros([16, 16], dtype=tl.float32)
    a22 = tl.zeros([16, 16], dtype=tl.float32)
    a30 = tl.zeros([16, 16], dtype=tl.float32)
    a31 = tl.zeros([16, 16], dtype=tl.float32)
    a32 = tl.zeros([16, 16], dtype=tl.float32)
    a33 = tl.zeros([16, 16], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = (o_k < K)[None, :]
        k0 = tl.load(k + (r0[:, None] * H + i_h) * K + o_k[None, :], mask=m_k, other=0.0)
        k1 = tl.load(k + (r1[:, None] * H + i_h) * K + o_k[None, :], mask=m_k, other=0.0)
        k2 = tl.load(k + (r2[:, None] * H + i_h) * K + o_k[None, :], mask=m_k, other=0.0)
        k3 = tl.load(k + (r3[:, None] * H + i_h) * K + o_k[None, :], mask=m_k, other=0.0)
        a00 = tl.dot(k0, tl.trans(k0), a00, input_precision=PREC)
        a10 = tl.dot(k1, tl.trans(k0), a10, input_precision=PREC)
        a11 = tl.dot(k1, tl.trans(k1), a11, input_precision=PREC)
        a20 = tl.dot(k2, tl.trans(k0), a20, input_precision=PREC)
        a21 = tl.dot(k2, tl.trans(k1), a21, input_precision=PREC)
        a22 = tl.dot(k2, tl.trans(k2), a22, input_precision=PREC)
        a30 = tl.dot(k3, tl.trans(k0), a30, input_precision=PREC)
        a31 = tl.dot(k3, tl.trans(k1), a31, input_precision=PREC)
        a32 = tl.dot(k3, tl.trans(k2), a32, input_precision=PREC)
        a33 = tl.dot(k3, tl.trans(k3), a33, input_precision=PREC)
    m_s = o_i[:, None] > o_i[None, :]
    if USE_G:
        g0 = tl.load(gc + r0 * H + i_h)
        g1 = tl.load(gc + r1 * H + i_h)
        g2 = tl.load(gc + r2 * H + i_h)
        g3 = tl.load(gc + r3 * H + i_h)
        # every exponent below is g_later - g_earlier <= 0 (masked entries get exponent 0)
        a00 = a00 * tl.exp(tl.where(m_s, g0[:, None] - g0[None, :], 0.0))
        a11 = a11 * tl.exp(tl.where(m_s, g1[:, None] - g1[None, :], 0.0))
        a22 = a22 * tl.exp(tl.where(m_s, g2[:, None] - g2[None, :], 0.0))
        a33 = a33 * tl.exp(tl.where(m_s, g3[:, None] - g3[None, :], 0.0))
        a10 = a10 * tl.exp(g1[:, None] - g0[None, :])
        a20 = a20 * tl.exp(g2[:, None] - g0[None, :])
        a21 = a21 * tl.exp(g2[:, None] - g1[None, :])
        a30 = a30 * tl.exp(g3[:, None] - g0[None, :])
        a31 = a31 * tl.exp(g3[:, None] - g1[None, :])
        a32 = a32 * tl.exp(g3[:, None] - g2[None, :])
    b0 = tl.load(beta + r0 * H + i_h).to(tl.float32)
    b1 = tl.load(beta + r1 * H + i_h).to(tl.float32)
    b2 = tl.load(beta + r2 * H + i_h).to(tl.float32)
    b3 = tl.load(beta + r3 * H + i_h).to(tl.float32)
    a00 = tl.where(m_s, a00 * b0[:, None], 0.0)
    a11 = tl.where(m_s, a11 * b1[:, None], 0.0)
    a22 = tl.where(m_s, a22 * b2[:, None], 0.0)
    a33 = tl.where(m_s, a33 * b3[:, None], 0.0)
    a10 = a10 * b1[:, None]
    a20 = a20 * b2[:, None]
    a21 = a21 * b2[:, None]
    a30 = a30 * b3[:, None]
    a31 = a31 * b3[:, None]
    a32 = a32 * b3[:, None]
    i00 = _inv_lower16(a00, o_i)
    i11 = _inv_lower16(a11, o_i)
    i22 = _inv_lower16(a22, o_i)
    i33 = _inv_lower16(a33, o_i)
    # block forward substitution: X_ij = -X_ii sum_{j <= m < i} A_im X_mj (fla merge_16x16_to_64x64_inverse)
    i10 = -tl.dot(tl.dot(i11, a10, input_precision=SPREC), i00, input_precision=SPREC)
    i21 = -tl.dot(tl.dot(i22, a21, input_precision=SPREC), i11, input_precision=SPREC)
    i32 = -tl.dot(tl.dot(i33, a32, input_precision=SPREC), i22, input_precision=SPREC)
    i20 = -tl.dot(i22, tl.dot(a20, i00, input_precision=SPREC) + tl.dot(a21, i10, input_precision=SPREC),
                  input_precision=SPREC)
    i31 = -tl.dot(i33, tl.dot(a31, i11, input_precision=SPREC) + tl.dot(a32, i21, input_precision=SPREC),
                  input_precision=SPREC)
    i30 = -tl.dot(i33, tl.dot(a30, i00, input_precision=SPREC) + tl.dot(a31, i10, input_precision=SPREC)
                  + tl.dot(a32, i20, input_precision=SPREC), input_precision=SPREC)
    z = tl.zeros([16, 16], dtype=tl.float32)
    _store16(ai, r0, 0, o_i, i00, H, i_h, BT)
    _store16(ai, r0, 16, o_i, z, H, i_h, BT)
    _store16(ai, r0, 32, o_i, z, H, i_h, BT)
    _store16(ai, r0, 48, o_i, z, H, i_h, BT)
    _store16(ai, r1, 0, o_i, i10, H, i_h, BT)
    _store16(ai, r1, 16, o_i, i11, H, i_h, BT)
    _store16(ai, r1, 32, o_i, z, H, i_h, BT)
    _store16(ai, r1, 48, o_i, z, H, i_h, BT)
    _store16(ai, r2, 0, o_i, i20, H, i_h, BT)
    _store16(ai, r2, 16, o_i, i21, H, i_h, BT)
    _store16(ai, r2, 32, o_i, i22, H, i_h, BT)
    _store16(ai, r2, 48, o_i, z, H, i_h, BT)
    _store16(ai, r3, 0, o_i, i30, H, i_h, BT)
    _store16(ai, r3, 16, o_i, i31, H, i_h, BT)
    _store16(ai, r3, 32, o_i, i32, H, i_h, BT)
    _store16(ai, r3, 48, o_i, i33, H, i_h, BT)


@triton.jit
def _wu_kernel(k, v, beta, gc, ai, w, u, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr,
               BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr, PREC: tl.constexpr):
    """One program per (chunk, head): ``u = Ai (b v)``, ``w = Ai (b exp(gc) k)``."""
    i_c, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    o_t = tl.arange(0, BT)
    rows = i_c * BT + o_t
    dt = k.dtype.element_ty
    b_b = tl.load(beta + rows * H + i_h).to(tl.float32)
    b_ai = tl.load(ai + (rows[:, None] * H + i_h) * BT + o_t[None, :]).to(dt)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = (o_v < V)[None, :]
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + p_v, mask=m_v, other=0.0)
        b_u = tl.dot(b_ai, (b_v * b_b[:, None]).to(dt), input_precision=PREC)
        tl.store(u + p_v, b_u.to(u.dtype.element_ty), mask=m_v)
    if USE_G:
        b_b = b_b * tl.exp(tl.load(gc + rows * H + i_h))
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = (o_k < K)[None, :]
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_k = tl.load(k + p_k, mask=m_k, other=0.0)
        b_w = tl.dot(b_ai, (b_k * b_b[:, None]).to(dt), input_precision=PREC)
        tl.store(w + p_k, b_w.to(w.dtype.element_ty), mask=m_k)


@triton.jit
def _fwd_h_kernel(k, w, u, gc, hs, vn, h0, ht, coff, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                  BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr, HAS_H0: tl.constexpr,
                  PREC: tl.constexpr):
    """One program per (value block, sequence, head), sequential over the sequence's chunks (state in registers)."""
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    dt = k.dtype.element_ty
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    if HAS_H0:
        b_h = tl.load(h0 + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=m_kv, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for c in range(c0, c1):
        tl.store(hs + (c * H + i_h) * K * V + p_s, b_h.to(hs.dtype.element_ty), mask=m_kv)
        rows = c * BT + o_t
        b_w = tl.load(w + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_vn = tl.load(u + p_v, mask=m_v[None, :], other=0.0).to(tl.float32)
        b_vn = b_vn - tl.dot(b_w, b_h.to(dt), input_precision=PREC)
        tl.store(vn + p_v, b_vn.to(vn.dtype.element_ty), mask=m_v[None, :])
        # k loaded transposed [BK, BT]
        b_kt = tl.load(k + (rows[None, :] * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        if USE_G:
            b_g = tl.load(gc + rows * H + i_h)
            b_gl = tl.load(gc + (c * BT + BT - 1) * H + i_h)
            b_vn = b_vn * tl.exp(b_gl - b_g)[:, None]
            b_h = b_h * tl.exp(b_gl)
        b_h = tl.dot(b_kt, b_vn.to(dt), b_h, input_precision=PREC)
    tl.store(ht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, b_h, mask=m_kv)


@triton.jit
def _fwd_o_kernel(q, k, vn, gc, hs, o, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                  BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr, PREC: tl.constexpr):
    """One program per (chunk x value block, head): ``o = scale ((q exp(gc)) h + (q k^T Gamma, causal) v')``."""
    NV = tl.cdiv(V, BV)
    pid, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    i_c, i_v = pid // NV, pid % NV
    dt = k.dtype.element_ty
    o_t, o_v = tl.arange(0, BT), i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    rows = i_c * BT + o_t
    b_o = tl.zeros([BT, BV], dtype=tl.float32)
    b_a = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_q = tl.load(q + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_kt = tl.load(k + (rows[None, :] * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_h = tl.load(hs + (i_c * H + i_h) * K * V + o_k[:, None] * V + o_v[None, :],
                      mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_o = tl.dot(b_q, b_h, b_o, input_precision=PREC)
        b_a = tl.dot(b_q, b_kt, b_a, input_precision=PREC)
    causal = o_t[:, None] >= o_t[None, :]
    if USE_G:
        b_g = tl.load(gc + rows * H + i_h)
        b_o = b_o * tl.exp(b_g)[:, None]
        b_a = b_a * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0))
    b_a = tl.where(causal, b_a, 0.0)
    p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
    b_vn = tl.load(vn + p_v, mask=m_v[None, :], other=0.0)
    b_o = (b_o + tl.dot(b_a.to(dt), b_vn, input_precision=PREC)) * scale
    tl.store(o + p_v, b_o.to(o.dtype.element_ty), mask=m_v[None, :])


@triton.jit
def _bwd_dv_local_kernel(q, k, gc, do, dvl, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                         BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr,
                         PREC: tl.constexpr):
    """One program per (chunk, head): ``dv_loc = (scale q k^T Gamma, causal)^T do``; the transposed score matrix
    ``k q^T`` is accumulated directly (q loaded transposed)."""
    i_c, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    dt = k.dtype.element_ty
    o_t = tl.arange(0, BT)
    rows = i_c * BT + o_t
    b_at = tl.zeros([BT, BT], dtype=tl.float32)  # b_at[j, i] = k_j . q_i
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_k = tl.load(k + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_qt = tl.load(q + (rows[None, :] * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_at = tl.dot(b_k, b_qt, b_at, input_precision=PREC)
    m_t = o_t[None, :] >= o_t[:, None]
    if USE_G:
        b_g = tl.load(gc + rows * H + i_h)
        b_at = b_at * tl.exp(tl.where(m_t, b_g[None, :] - b_g[:, None], 0.0))
    b_at = tl.where(m_t, b_at * scale, 0.0).to(dt)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = (o_v < V)[None, :]
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_do = tl.load(do + p_v, mask=m_v, other=0.0)
        b_dv = tl.dot(b_at, b_do, input_precision=PREC)
        tl.store(dvl + p_v, b_dv.to(dvl.dtype.element_ty), mask=m_v)


@triton.jit
def _bwd_dhu_kernel(q, k, w, gc, do, dvl, dhs, dv2, dht, dh0, coff, scale, H: tl.constexpr, K: tl.constexpr,
                    V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr,
                    PREC: tl.constexpr):
    """One program per (value block, sequence, head), reverse over chunks: gradient of the state leaving each chunk
    (stored), total ``dv'`` per chunk, and ``d h0``."""
    i_v, i_n, i_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    c0 = tl.load(coff + i_n).to(tl.int64)
    c1 = tl.load(coff + i_n + 1).to(tl.int64)
    dt = k.dtype.element_ty
    o_k, o_v, o_t = tl.arange(0, BK), i_v * BV + tl.arange(0, BV), tl.arange(0, BT)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_s = o_k[:, None] * V + o_v[None, :]
    b_dh = tl.load(dht + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, mask=m_kv, other=0.0)
    for i in range(c1 - c0):
        c = c1 - 1 - i
        tl.store(dhs + (c * H + i_h) * K * V + p_s, b_dh.to(dhs.dtype.element_ty), mask=m_kv)
        rows = c * BT + o_t
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_k = tl.load(k + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_dv = tl.dot(b_k, b_dh.to(dt), input_precision=PREC)
        b_qt = tl.load(q + (rows[None, :] * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_wt = tl.load(w + (rows[None, :] * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_do = tl.load(do + p_v, mask=m_v[None, :], other=0.0)
        if USE_G:
            b_g = tl.load(gc + rows * H + i_h)
            b_gl = tl.load(gc + (c * BT + BT - 1) * H + i_h)
            b_dv = b_dv * tl.exp(b_gl - b_g)[:, None]
            b_qt = (b_qt * tl.exp(b_g)[None, :]).to(dt)
            b_dh = b_dh * tl.exp(b_gl)
        b_dv = b_dv + tl.load(dvl + p_v, mask=m_v[None, :], other=0.0).to(tl.float32)
        tl.store(dv2 + p_v, b_dv.to(dv2.dtype.element_ty), mask=m_v[None, :])
        b_dh = b_dh + tl.dot(b_qt, b_do, input_precision=PREC) * scale
        b_dh = b_dh - tl.dot(b_wt, b_dv.to(dt), input_precision=PREC)
    tl.store(dh0 + (tl.cast(i_n, tl.int64) * H + i_h) * K * V + p_s, b_dh, mask=m_kv)


@triton.jit
def _bwd_dqkwg_kernel(q, k, vn, gc, hs, dhs, do, dv2, dq, dk, dw, dgp, scale, NT, H: tl.constexpr,
                      K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                      USE_G: tl.constexpr, PREC: tl.constexpr):
    """One program per (chunk x key block, head): dq, the non-WY dk, dw and the per-row log-gate gradient.

    ``ds = do v'^T`` and its transpose ``dsT = v' do^T`` are both accumulated from loaded tiles (no transpose of a
    dot result, see the module note)."""
    NK = tl.cdiv(K, BK)
    pid, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    i_c, i_k = pid // NK, pid % NK
    dt = k.dtype.element_ty
    o_t, o_k = tl.arange(0, BT), i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    rows = i_c * BT + o_t
    b_ds = tl.zeros([BT, BT], dtype=tl.float32)
    b_dst = tl.zeros([BT, BT], dtype=tl.float32)
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    b_dw = tl.zeros([BT, BK], dtype=tl.float32)
    b_hdh = tl.zeros([1], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_vn = tl.load(vn + p_v, mask=m_v[None, :], other=0.0)
        b_do = tl.load(do + p_v, mask=m_v[None, :], other=0.0)
        b_dv = tl.load(dv2 + p_v, mask=m_v[None, :], other=0.0)
        # states loaded transposed: [BV, BK]
        p_st = (i_c * H + i_h) * K * V + o_k[None, :] * V + o_v[:, None]
        m_st = m_v[:, None] & m_k[None, :]
        b_ht = tl.load(hs + p_st, mask=m_st, other=0.0)
        b_dht = tl.load(dhs + p_st, mask=m_st, other=0.0)
        b_ds = tl.dot(b_do, tl.trans(b_vn), b_ds, input_precision=PREC)
        b_dst = tl.dot(b_vn, tl.trans(b_do), b_dst, input_precision=PREC)
        b_dq = tl.dot(b_do, b_ht, b_dq, input_precision=PREC)
        b_dk = tl.dot(b_vn, b_dht, b_dk, input_precision=PREC)
        b_dw = tl.dot(b_dv, b_ht, b_dw, input_precision=PREC)
        if USE_G:
            b_hdh += tl.sum(b_ht.to(tl.float32) * b_dht.to(tl.float32))
    p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
    tl.store(dw + p_k, (-b_dw).to(dw.dtype.element_ty), mask=m_k[None, :])
    b_q = tl.load(q + p_k, mask=m_k[None, :], other=0.0)
    b_k = tl.load(k + p_k, mask=m_k[None, :], other=0.0)
    causal = o_t[:, None] >= o_t[None, :]
    causal_t = o_t[None, :] >= o_t[:, None]
    if USE_G:
        b_g = tl.load(gc + rows * H + i_h)
        b_gl = tl.load(gc + (i_c * BT + BT - 1) * H + i_h)
        b_dq = b_dq * tl.exp(b_g)[:, None]
        b_dk = b_dk * tl.exp(b_gl - b_g)[:, None]
        b_dgl = b_hdh * tl.exp(b_gl) + tl.sum(b_dk * b_k.to(tl.float32))
        b_ds = b_ds * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0))
        b_dst = b_dst * tl.exp(tl.where(causal_t, b_g[None, :] - b_g[:, None], 0.0))
    b_ds = tl.where(causal, b_ds, 0.0).to(dt)
    b_dst = tl.where(causal_t, b_dst, 0.0).to(dt)
    b_dq = (b_dq + tl.dot(b_ds, b_k, input_precision=PREC)) * scale
    b_dk = b_dk + tl.dot(b_dst, b_q, input_precision=PREC) * scale
    tl.store(dq + p_k, b_dq.to(dq.dtype.element_ty), mask=m_k[None, :])
    tl.store(dk + p_k, b_dk.to(dk.dtype.element_ty), mask=m_k[None, :])
    if USE_G:
        b_dg = tl.sum(b_dq * b_q.to(tl.float32), 1) - tl.sum(b_dk * b_k.to(tl.float32), 1)
        b_dg = b_dg + tl.where(o_t == BT - 1, b_dgl, 0.0)
        tl.store(dgp + (i_k * NT * BT + rows) * H + i_h, b_dg)


@triton.jit
def _wy_bwd_kernel(k, v, beta, gc, ai, dw, du, dkp, dgp, dk, dv, db, dg, NT, H: tl.constexpr, K: tl.constexpr,
                   V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, NKP: tl.constexpr,
                   USE_G: tl.constexpr, PREC: tl.constexpr):
    """One program per (chunk, head): backward through ``w = Ai (b exp(gc) k)``, ``u = Ai (b v)`` and
    ``Ai = (I + A)^{-1}``, ``A = strict_tril(b (k k^T) Gamma)``; adds the partial dk (``dkp``) and finishes dg.

    ``dA = -Ai^T dAi Ai^T`` (strictly lower) and its transpose ``dA^T = -Ai dAi^T Ai`` are both formed from
    accumulations over loaded tiles; ``M = dA Gamma`` gives ``dk += b (M k) + M^T (b k)``."""
    i_c, i_h = tl.program_id(0).to(tl.int64), tl.program_id(1)
    dt = k.dtype.element_ty
    o_t = tl.arange(0, BT)
    rows = i_c * BT + o_t
    b_b = tl.load(beta + rows * H + i_h).to(tl.float32)
    if USE_G:
        b_g = tl.load(gc + rows * H + i_h)
        b_e = tl.exp(b_g)
        b_bg = b_b * b_e
    else:
        b_bg = b_b
    p_ai = ai + (rows[:, None] * H + i_h) * BT + o_t[None, :]    # Ai[i, j]
    p_ait = ai + (rows[None, :] * H + i_h) * BT + o_t[:, None]   # Ai^T[i, j] = Ai[j, i]
    b_dai = tl.zeros([BT, BT], dtype=tl.float32)
    b_dait = tl.zeros([BT, BT], dtype=tl.float32)
    b_db = tl.zeros([BT], dtype=tl.float32)
    b_dg = tl.zeros([BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = (o_v < V)[None, :]
        p_v = (rows[:, None] * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + p_v, mask=m_v, other=0.0)
        b_vb = (b_v * b_b[:, None]).to(dt)
        b_du = tl.load(du + p_v, mask=m_v, other=0.0)
        b_dai = tl.dot(b_du, tl.trans(b_vb), b_dai, input_precision=PREC)
        b_dait = tl.dot(b_vb, tl.trans(b_du), b_dait, input_precision=PREC)
        b_ait = tl.load(p_ait).to(dt)
        b_dvb = tl.dot(b_ait, b_du, input_precision=PREC)
        tl.store(dv + p_v, (b_dvb * b_b[:, None]).to(dv.dtype.element_ty), mask=m_v)
        b_db += tl.sum(b_dvb * b_v.to(tl.float32), 1)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = (o_k < K)[None, :]
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_k = tl.load(k + p_k, mask=m_k, other=0.0)
        b_kbg = (b_k * b_bg[:, None]).to(dt)
        b_dw = tl.load(dw + p_k, mask=m_k, other=0.0)
        b_dai = tl.dot(b_dw, tl.trans(b_kbg), b_dai, input_precision=PREC)
        b_dait = tl.dot(b_kbg, tl.trans(b_dw), b_dait, input_precision=PREC)
    b_ai = tl.load(p_ai).to(dt)
    b_ait = tl.load(p_ait).to(dt)
    m_l = o_t[:, None] > o_t[None, :]
    m_u = o_t[:, None] < o_t[None, :]
    b_da = tl.dot(b_ait, tl.dot(b_dai.to(dt), b_ait, input_precision=PREC).to(dt), input_precision=PREC)
    b_dat = tl.dot(b_ai, tl.dot(b_dait.to(dt), b_ai, input_precision=PREC).to(dt), input_precision=PREC)
    if USE_G:
        b_da = b_da * tl.exp(tl.where(m_l, b_g[:, None] - b_g[None, :], 0.0))
        b_dat = b_dat * tl.exp(tl.where(m_u, b_g[None, :] - b_g[:, None], 0.0))
    b_m = tl.where(m_l, -b_da, 0.0)
    b_mt = tl.where(m_u, -b_dat, 0.0).to(dt)
    b_md = b_m.to(dt)
    b_kk = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = (o_k < K)[None, :]
        p_k = (rows[:, None] * H + i_h) * K + o_k[None, :]
        b_k = tl.load(k + p_k, mask=m_k, other=0.0)
        b_kf = b_k.to(tl.float32)
        b_dw = tl.load(dw + p_k, mask=m_k, other=0.0)
        b_ait = tl.load(p_ait).to(dt)
        b_dkbg = tl.dot(b_ait, b_dw, input_precision=PREC)          # d(b exp(gc) k) through w
        b_mk = tl.dot(b_md, b_k, input_precision=PREC)              # M k
        b_s = tl.sum(b_dkbg * b_kf, 1)
        b_db += tl.sum(b_mk * b_kf, 1)
        if USE_G:
            b_db += b_s * b_e
            b_dg += b_s * b_bg
            b_kk = tl.dot(b_k, tl.trans(b_k), b_kk, input_precision=PREC)
        else:
            b_db += b_s
        b_dk = (tl.load(dkp + p_k, mask=m_k, other=0.0).to(tl.float32) + b_dkbg * b_bg[:, None]
                + b_mk * b_b[:, None] + tl.dot(b_mt, (b_k * b_b[:, None]).to(dt), input_precision=PREC))
        tl.store(dk + p_k, b_dk.to(dk.dtype.element_ty), mask=m_k)
    tl.store(db + rows * H + i_h, b_db)
    if USE_G:
        b_p = b_m * b_kk * b_b[:, None]
        b_dg += tl.sum(b_p, 1) - tl.sum(b_p, 0)
        for i_k in range(NKP):
            b_dg += tl.load(dgp + (i_k * NT * BT + rows) * H + i_h)
        # d log-gate of step t = sum of d gc over the rows s >= t of the chunk
        b_dg = tl.sum(b_dg, 0) - tl.cumsum(b_dg, 0) + b_dg
        tl.store(dg + rows * H + i_h, b_dg)


def _prec(dtype: torch.dtype) -> str:
    """Dot precision. 16-bit inputs: tensor cores (the argument does not apply). float32 inputs: ``ieee`` under
    the CPU interpreter; on the GPU ``tf32x3`` (three tf32 products, about float32 accuracy on tensor cores),
    because ``ieee`` float32 dots compile to FMA loops that spill heavily (measured for sm_90 with the bundled
    ptxas: up to 18 KB of stack per thread and 100 s compile time for one kernel)."""
    if dtype != torch.float32:
        return "tf32"
    return "ieee" if interpret_mode() else "tf32x3"


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, next_pow2(n))


def _state_blocks(K: int, V: int) -> tuple[int, int]:
    """Tiles of the sequential state kernels: the whole key dim in one ``[BK, BV]`` float32 register tile."""
    BK = _pow2(K)
    return BK, min(_pow2(V), max(16, min(64, 4096 // BK)))


def n_chunks_alloc(B: int, T: int, cu_seqlens: torch.Tensor | None, C: int = CHUNK) -> int:
    """Static upper bound of the number of chunks (exact for dense batches): sizes the saved per-chunk tensors so
    the fake (meta) implementation knows their shapes without reading ``cu_seqlens``."""
    if cu_seqlens is None:
        return B * ((T + C - 1) // C)
    return (T + (C - 1) * (cu_seqlens.shape[0] - 1)) // C


class _DenseChunks:
    """The padded chunk layout of a dense batch (``cu_seqlens`` None) built from device ops only.

    Same interface as :class:`~seqlab.kernels.gla.chunk_layout.ChunkLayout` (``N``, ``NT``, ``chunk_offsets``,
    ``to_chunks``, ``from_chunks``), but without host-side index tensors: ``ChunkLayout`` copies its offsets from
    a Python list (a blocking host-to-device copy, i.e. a stream sync per call), which would leave the GPU idle
    while the host launches the next kernels. Dense rows are padded at the end of each sequence with ``F.pad``.
    """

    def __init__(self, B: int, T: int, device: torch.device, C: int):
        self.B, self.T, self.C = B, T, C
        self.ntc = (T + C - 1) // C
        self.pad = self.ntc * C - T
        self.N, self.NT = B, B * self.ntc
        self.chunk_offsets = torch.arange(B + 1, device=device, dtype=torch.int32) * self.ntc

    def to_chunks(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        x = x if dtype is None else x.to(dtype)
        if self.pad:
            x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, self.pad))
        return x.reshape(self.NT, self.C, *x.shape[2:])

    def from_chunks(self, y: torch.Tensor) -> torch.Tensor:
        y = y.reshape(self.B, self.ntc * self.C, *y.shape[2:])
        return y[:, :self.T] if self.pad else y


def _layout(B: int, T: int, cu_seqlens: torch.Tensor | None, device: torch.device):
    return _DenseChunks(B, T, device, CHUNK) if cu_seqlens is None else ChunkLayout(B, T, cu_seqlens, device, CHUNK)


def _gate_chunks(g: torch.Tensor | None, lay: ChunkLayout) -> torch.Tensor | None:
    """In-chunk cumulative log gate ``[NT, C, H]`` float32 (padded rows add 0)."""
    return None if g is None else lay.to_chunks(g, torch.float32).cumsum(1)


def delta_rule_fwd(q, k, v, beta, g, h0, cu_seqlens, scale):
    """Forward. Returns ``(o, final state, Ai, w, h, v')``; the last four (per chunk, ``n_chunks_alloc`` rows, of
    which the first ``NT`` are used) are kept for the backward."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = CHUNK
    lay = _layout(B, T, cu_seqlens, q.device)
    NT, NTA, dt = lay.NT, n_chunks_alloc(B, T, cu_seqlens), q.dtype
    prec = _prec(dt)
    qc, kc, vc, bc = (lay.to_chunks(x) for x in (q, k, v, beta))
    gcs = _gate_chunks(g, lay)
    gp = gcs if gcs is not None else bc  # placeholder pointer when there is no gate (never read)
    ai = q.new_empty(NTA, C, H, C)
    w = q.new_empty(NTA, C, H, K)
    hs = q.new_empty(NTA, H, K, V)
    vn = q.new_empty(NTA, C, H, V)
    u = q.new_empty(NT, C, H, V)
    oc = torch.empty(NT, C, H, V, device=q.device, dtype=v.dtype)
    ht = torch.empty(lay.N, H, K, V, device=q.device, dtype=torch.float32)
    use_g = g is not None
    BK, BV = min(64, _pow2(K)), min(64, _pow2(V))
    if NT:
        _kkt_solve_kernel[(NT, H)](kc, bc, gp, ai, H=H, K=K, BT=C, BK=BK, USE_G=use_g, PREC=prec,
                                   SPREC=prec, num_warps=2)
        _wu_kernel[(NT, H)](kc, vc, bc, gp, ai, w, u, H=H, K=K, V=V, BT=C, BK=BK, BV=BV, USE_G=use_g, PREC=prec,
                            num_warps=4)
    SK, SV = _state_blocks(K, V)
    _fwd_h_kernel[(cdiv(V, SV), lay.N, H)](
        kc, w, u, gp, hs, vn, h0 if h0 is not None else ht, ht, lay.chunk_offsets, H=H, K=K, V=V, BT=C, BK=SK,
        BV=SV, USE_G=use_g, HAS_H0=h0 is not None, PREC=prec, num_warps=4, num_stages=2)
    if NT:
        _fwd_o_kernel[(NT * cdiv(V, BV), H)](
            qc, kc, vn, gp, hs, oc, scale, H=H, K=K, V=V, BT=C, BK=BK, BV=BV, USE_G=use_g, PREC=prec,
            num_warps=4, num_stages=2)
    return lay.from_chunks(oc).contiguous(), ht, ai, w, hs, vn


def delta_rule_bwd(q, k, v, beta, g, h0, cu_seqlens, scale, ai, w, hs, vn, do, dht):
    """Backward from the saved ``Ai, w, h, v'``. Returns ``(dq, dk, dv, dbeta, dg or None, d h0 [N, H, K, V])``."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = CHUNK
    lay = _layout(B, T, cu_seqlens, q.device)
    NT, dt = lay.NT, q.dtype
    prec = _prec(dt)
    qc, kc, vc, bc, doc = (lay.to_chunks(x) for x in (q, k, v, beta, do.to(dt)))
    gcs = _gate_chunks(g, lay)
    use_g = gcs is not None
    gp = gcs if use_g else bc
    BK, BV = min(64, _pow2(K)), min(64, _pow2(V))
    NK = cdiv(K, BK)
    dvl = q.new_empty(NT, C, H, V)
    dv2 = q.new_empty(NT, C, H, V)
    dhs = q.new_empty(NT, H, K, V)
    dh0 = torch.empty(lay.N, H, K, V, device=q.device, dtype=torch.float32)
    dq, dkp, dk, dw = (q.new_empty(NT, C, H, K) for _ in range(4))
    dv = q.new_empty(NT, C, H, V)
    db = torch.empty(NT, C, H, device=q.device, dtype=torch.float32)
    dgp = torch.empty(NK, NT, C, H, device=q.device, dtype=torch.float32) if use_g else db
    dg = torch.empty(NT, C, H, device=q.device, dtype=torch.float32) if use_g else db
    if NT:
        _bwd_dv_local_kernel[(NT, H)](qc, kc, gp, doc, dvl, scale, H=H, K=K, V=V, BT=C, BK=BK, BV=BV,
                                      USE_G=use_g, PREC=prec, num_warps=4)
    SK, SV = _state_blocks(K, V)
    # Without a gate the state pass still runs its gated variant, on a zero log gate (exp(0) = 1: the same math).
    # The ungated compile of this kernel faulted on an H200 (Triton 3.6, sm_90, B4 T4096 H16 K=V=128 bf16) with
    # "an illegal memory access" whenever the final-state gradient was non-zero, and ran when it was zero; the
    # gated compile ran on the same inputs (benchmarks/delta_rule_probe.py, docs/results.md, Kernels II). The
    # cause inside the compiled code is not found; the zero gate costs a [NT, 64, H] float32 read.
    gd = gp if use_g else torch.zeros(NT, C, H, device=q.device, dtype=torch.float32)
    _bwd_dhu_kernel[(cdiv(V, SV), lay.N, H)](
        qc, kc, w, gd, doc, dvl, dhs, dv2, dht, dh0, lay.chunk_offsets, scale, H=H, K=K, V=V, BT=C, BK=SK, BV=SV,
        USE_G=True, PREC=prec, num_warps=4, num_stages=1)  # 2 stages: 118 KB shared on sm_90, 1 program per SM
    if NT:
        _bwd_dqkwg_kernel[(NT * NK, H)](
            qc, kc, vn, gp, hs, dhs, doc, dv2, dq, dkp, dw, dgp, scale, NT, H=H, K=K, V=V, BT=C, BK=BK, BV=BV,
            USE_G=use_g, PREC=prec, num_warps=4, num_stages=2)
        _wy_bwd_kernel[(NT, H)](
            kc, vc, bc, gp, ai, dw, dv2, dkp, dgp, dk, dv, db, dg, NT, H=H, K=K, V=V, BT=C, BK=BK, BV=BV, NKP=NK,
            USE_G=use_g, PREC=prec, num_warps=4)
    dgo = lay.from_chunks(dg).to(g.dtype) if use_g else None
    dgo = dgo.contiguous() if use_g else None
    return (lay.from_chunks(dq).contiguous(), lay.from_chunks(dk).contiguous(), lay.from_chunks(dv).contiguous(),
            lay.from_chunks(db).to(beta.dtype).contiguous(), dgo, dh0)
