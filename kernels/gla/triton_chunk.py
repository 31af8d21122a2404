"""Triton path of gated linear attention with a vector decay (GLA).

Forward ("fused chunk", fla ``ops/gla/chunk.py`` for the algorithm): one program per (sequence, head, block of
value channels) walks the sequence in chunks of 64 with the state ``S [K, BV]`` in registers. Per chunk, with
``gc`` the in-chunk cumulative log decay (computed beforehand, float32):

- intra-chunk scores per query sub-chunk of 16 (secondary-level chunking, GLA paper section 4.2): the decay is
  split at the first step ``r`` of the query sub-chunk, ``q_i exp(gc_i - gc_r)`` (<= 1) times
  ``k_j exp(gc_r - gc_j)`` (<= 1 for earlier sub-chunks; for the diagonal sub-chunk the factor is at most the
  decay over 15 steps, clamped at ``exp(80)``: exact while 15 consecutive steps decay by less than e^-80 per
  channel, which any sigmoid-parameterised gate satisfies);
- ``o = (q exp(gc)) S + A v`` and ``S <- exp(gc_C) * S + (k exp(gc_C - gc))^T v``.

``fused_recurrent`` runs the same kernel (its result is the same recurrence). Backward: recomputes the chunked
PyTorch form (``reference.gla_chunked``) under autograd in float32; exact, not a hand-written Triton backward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.gla.reference import gla_chunked
from seqlab.kernels.gla.segments import per_sequence

CHUNK = 64
SUB = 16


def _chunk_cumsum(g: torch.Tensor, C: int = CHUNK) -> torch.Tensor:
    B, T, H, K = g.shape
    pad = (-T) % C
    x = F.pad(g.float(), (0, 0, 0, 0, 0, pad)).view(B, -1, C, H, K).cumsum(2)
    return x.view(B, -1, H, K)[:, :T].contiguous()


@triton.jit
def _gla_fwd_kernel(q, k, v, gc, o, h0, ht, cu, T, scale, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                    BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
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
    o_c = tl.arange(0, BC)
    mask_k, mask_v = o_k < K, o_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    p_h = (tl.cast(i_nh, tl.int64) * K + o_k[:, None]) * V + o_v[None, :]
    if HAS_H0:
        b_h = tl.load(h0 + p_h, mask=mask_kv, other=0.0)
    else:
        b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for start in range(0, L, BT):
        t = start + o_t
        mask_t = t < L
        rows = bos + t
        mtk = mask_t[:, None] & mask_k[None, :]
        mtv = mask_t[:, None] & mask_v[None, :]
        b_k = tl.load(k + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=mtk, other=0.0).to(tl.float32)
        b_g = tl.load(gc + (rows[:, None] * H + i_h) * K + o_k[None, :], mask=mtk, other=0.0)
        b_v = tl.load(v + (rows[:, None] * H + i_h) * V + o_v[None, :], mask=mtv, other=0.0).to(tl.float32)
        last = tl.minimum(L - start, BT) - 1
        b_gl = tl.sum(tl.where((o_t == last)[:, None], b_g, 0.0), 0)  # [BK]
        for s in tl.static_range(0, BT // BC):
            tc = start + s * BC + o_c
            mask_c = tc < L
            rc = bos + tc
            mck = mask_c[:, None] & mask_k[None, :]
            b_qc = tl.load(q + (rc[:, None] * H + i_h) * K + o_k[None, :], mask=mck, other=0.0).to(tl.float32)
            b_gcc = tl.load(gc + (rc[:, None] * H + i_h) * K + o_k[None, :], mask=mck, other=0.0)
            b_ref = tl.sum(tl.where((o_c == 0)[:, None], b_gcc, 0.0), 0)  # [BK]
            b_qc = b_qc * scale
            b_qr = b_qc * tl.exp(b_gcc - b_ref[None, :])
            b_kr = b_k * tl.exp(tl.minimum(b_ref[None, :] - b_g, 80.0))
            b_qi = b_qc * tl.exp(b_gcc)
            if IEEE:
                b_a = tl.dot(b_qr, tl.trans(b_kr), input_precision="ieee")  # [BC, BT]
            else:
                b_a = tl.dot(b_qr, tl.trans(b_kr))
            b_a = tl.where((s * BC + o_c)[:, None] >= o_t[None, :], b_a, 0.0)
            if IEEE:
                b_o = tl.dot(b_a, b_v, input_precision="ieee") + tl.dot(b_qi, b_h, input_precision="ieee")
            else:
                b_o = tl.dot(b_a, b_v) + tl.dot(b_qi, b_h)
            tl.store(o + (rc[:, None] * H + i_h) * V + o_v[None, :], b_o.to(o.dtype.element_ty),
                     mask=mask_c[:, None] & mask_v[None, :])
        b_kd = b_k * tl.where(mtk, tl.exp(b_gl[None, :] - b_g), 0.0)
        if IEEE:
            b_h = b_h * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_kd), b_v, input_precision="ieee")
        else:
            b_h = b_h * tl.exp(b_gl)[:, None] + tl.dot(tl.trans(b_kd), b_v)
    tl.store(ht + p_h, b_h, mask=mask_kv)


def gla_fwd(q, k, v, g, h0, cu_seqlens, scale, mode):
    """Forward launch; returns (o, final state [N, H, K, V] float32)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    if cu_seqlens is None:
        gc = _chunk_cumsum(g)
    else:
        offs = cu_seqlens.tolist()
        gc = torch.cat([_chunk_cumsum(g[:, a:b]) for a, b in zip(offs[:-1], offs[1:])], 1)
    o = torch.empty_like(v)
    ht = torch.empty(N, H, K, V, device=q.device, dtype=torch.float32)
    BK = max(16, triton.next_power_of_2(K))
    BV = min(32, max(16, triton.next_power_of_2(V)))
    grid = (triton.cdiv(V, BV), N * H)
    _gla_fwd_kernel[grid](q, k, v, gc, o, h0, ht, cu_seqlens, T, scale, H=H, K=K, V=V, BT=CHUNK, BC=SUB, BK=BK,
                          BV=BV, HAS_H0=h0 is not None, VARLEN=cu_seqlens is not None,
                          IEEE=q.dtype == torch.float32 or interpret_mode(), num_warps=8 if BK >= 128 else 4, num_stages=1)
    return o, ht


def gla_bwd(q, k, v, g, h0, cu_seqlens, scale, do, dht):
    """Backward by recomputing the chunked PyTorch form under autograd (float32)."""
    N = q.shape[0] if cu_seqlens is None else cu_seqlens.numel() - 1
    if h0 is None:
        h0 = q.new_zeros(N, q.shape[2], q.shape[3], v.shape[3], dtype=torch.float32)
    xs = [x.detach().requires_grad_() for x in (q, k, v, g, h0)]
    with torch.enable_grad():
        def run(q_, k_, v_, g_, h_, out_):
            return gla_chunked(q_, k_, v_, g_, scale, h_, out_)
        o, ht = per_sequence(run, tuple(xs[:4]), xs[4], cu_seqlens, True)
        grads = torch.autograd.grad((o, ht), xs, (do.float(), dht), allow_unused=True)
    return tuple(torch.zeros_like(x) if d is None else d.to(x.dtype) for d, x in zip(grads, xs))
