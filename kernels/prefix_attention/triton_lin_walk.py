"""Prefix attention's value scan in scan1's walking form (``SEQLAB_PREFIX_ATTN_SCAN_WALK=1``, opt-in, dense input):
one program per (sequence, block of ``BC * VEC`` channels of the ``[T, H * V]`` rows) walks the whole sequence,
``o_t = (1 - beta_t) o_{t-1} + beta_t v_t`` (see :mod:`seqlab.kernels.prefix_attention.triton_lin`), its loads
software-pipelined by Triton and each chunk scanned in ``TS`` segments (:mod:`seqlab.kernels.scan1.triton_walk`).
No workspace, no fill, no look-back: it replaces ``_pa_scan_fwd_kernel`` after the same score pass.

Untimed on a GPU (twelfth session, no device time left): ``bash benchmarks/pending_gpu.sh $OUT walk13`` times
scan1's walking kernels at this shape (B4 T4096 D=2048 bf16) first; the look-back value scan took 44 us there.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode
from seqlab.kernels.scan1.triton_launch import _segscan
from seqlab.kernels.scan1.triton_walk import _combine, _ld, _rows4, _seg_carries, _st, _walk_chans


@triton.jit
def _pa_walk_chunk(pb, pv, po, mask, mb, h, TS: tl.constexpr, TI: tl.constexpr, MASKED: tl.constexpr,
                   SEGSCAN: tl.constexpr):
    """One chunk from carry ``h``: gates ``a = 1 - beta``, inputs ``b = beta v``, store ``o``, return the carry out.
    ``mb`` masks the ``beta`` pointers (their own shape: ``[1, TS, TI, 1]`` for a one-head block); masked rows load
    ``beta = 0``, an identity step."""
    vv = _ld(pv, mask, 0.0, MASKED)
    g = _ld(pb, mb, 0.0, MASKED)
    b = g * vv
    a = (1.0 - g) + tl.zeros_like(b)
    ca, cb = tl.associative_scan((a, b), 2, _combine)
    enter, h = _seg_carries(ca, cb, h, TS, TI, SEGSCAN)
    _st(po, ca * enter[:, :, None, :] + cb, mask, MASKED)
    return h


@triton.jit
def _pa_walk_fwd_kernel(
    beta, v, u0, w0, o, uT, wT, L, nD, H: tl.constexpr, V: tl.constexpr, HAS_H0: tl.constexpr,
    CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr, STAGES: tl.constexpr, TS: tl.constexpr,
    I64: tl.constexpr, MASK_D: tl.constexpr, HEAD_BLOCK: tl.constexpr, SEGSCAN: tl.constexpr = 0,
):
    """``HEAD_BLOCK``: every channel of a program lies in one head (``V % (BC * VEC) == 0``), so ``beta`` is one
    ``[1, TS, TI, 1]`` load a chunk; else one per channel. The state entering the sequence is ``u_0 / w_0`` (zero
    where ``w_0 = 0``), and ``u_T = o_T w_T``."""
    D: tl.constexpr = H * V
    TI: tl.constexpr = CT // TS
    i_n, o_d, m_d = _walk_chans(tl.program_id(0), nD, D, BC, VEC, I64)
    hd = o_d // V
    r4 = _rows4(TS, TI)
    toff = o_d[:, None, None, :] + r4 * D
    m_dt = m_d[:, None, None, :] & (r4 >= 0)
    if HEAD_BLOCK:
        boff = (tl.program_id(0) % nD) * (BC * VEC) // V + r4 * H
        m_bt = r4 >= 0
    else:
        boff = hd[:, None, None, :] + r4 * H
        m_bt = m_dt
    h = tl.zeros([BC, VEC], tl.float32)
    if HAS_H0:
        u = tl.load(u0 + i_n * D + o_d, mask=m_d, other=0.0)
        w = tl.load(w0 + i_n * H + hd, mask=m_d, other=0.0)
        h = tl.where(w > 0, u / tl.where(w > 0, w, 1.0), 0.0)
    full = L // CT
    for j in tl.range(0, full, num_stages=STAGES):
        row0 = i_n * L + j * CT
        h = _pa_walk_chunk(beta + row0 * H + boff, v + row0 * D + toff, o + row0 * D + toff, m_dt, m_bt, h,
                           TS, TI, MASK_D, SEGSCAN)
    if full * CT < L:  # the ragged last chunk
        row0 = i_n * L + full * CT
        m_t = full * CT + r4 < L
        h = _pa_walk_chunk(beta + row0 * H + boff, v + row0 * D + toff, o + row0 * D + toff, m_dt & m_t, m_bt & m_t,
                           h, TS, TI, True, SEGSCAN)
    w = tl.load(wT + i_n * H + hd, mask=m_d, other=0.0)
    tl.store(uT + i_n * D + o_d, h * w, mask=m_d)


def walk_config(dtype: torch.dtype, varlen: bool) -> tuple[int, int, int, int, int, int] | None:
    """``(CT, BC, VEC, num_warps, STAGES, TS)`` of the walking value scan, or ``None`` (the look-back value scan).
    ``SEQLAB_PREFIX_ATTN_SCAN_WALK``: ``0`` (default) or ``1`` (dense input only; untimed, see the module
    docstring); ``SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG=CT,BC,VEC,W,S,TS`` sets the tile. Defaults as scan1's walking
    forward (:func:`seqlab.kernels.scan1.triton_launch._walk_config`): 64-step chunks of 32 channels, one warp, 3
    stages, ``TS`` segments from the storage dtype."""
    v = getenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "0")
    if v not in ("0", "1"):
        raise ValueError(f"SEQLAB_PREFIX_ATTN_SCAN_WALK must be 0 or 1, got {v!r}")
    if v == "0" or varlen:
        return None
    env = getenv("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG")
    if env:
        try:
            vals = tuple(int(x) for x in env.split(","))
        except ValueError:
            vals = ()
        if len(vals) != 6 or min(vals) < 1 or any(x & (x - 1) for i, x in enumerate(vals) if i != 4) \
                or vals[5] > vals[0]:
            raise ValueError("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG must be CT,BC,VEC,W,S,TS: powers of two but S >= 1, "
                             f"TS <= CT; got {env!r}")
        return vals
    if interpret_mode():
        return 16, 16, 1, 1, 2, 4
    ct, bc, vec, w, st = 64, 32, 1, 1, 3
    return ct, bc, vec, w, st, min(ct, max(1, 32 * w * max(1, 16 // dtype.itemsize) // (bc * vec)))


def walk_value_scan(cfg, beta, v, u0, w0, o, uT, wT, has_h0: bool) -> None:
    """Launch :func:`_pa_walk_fwd_kernel` over dense ``v`` ``[B, T, H, V]`` (``o``, ``u_T`` written)."""
    B, T, H, V = v.shape
    ct, bc, vec, warps, stages, ts = cfg
    D = H * V
    nd = cdiv(D, bc * vec)
    _pa_walk_fwd_kernel[(B * nd,)](
        beta, v, u0, w0, o, uT, wT, T, nd, H=H, V=V, HAS_H0=has_h0, CT=ct, BC=bc, VEC=vec, STAGES=stages,
        TS=ts, I64=v.numel() >= 2**31 - 1, MASK_D=D % (bc * vec) != 0, HEAD_BLOCK=V % (bc * vec) == 0,
        SEGSCAN=_segscan(), num_warps=warps,
    )
