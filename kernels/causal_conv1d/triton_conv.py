"""Triton kernels for the depthwise causal convolution on channels-last ``[B, T, C]`` (C contiguous).

Structure after fla's ``causal_conv1d_fwd_kernel`` / ``causal_conv1d_bwd_kernel``
(github.com/fla-org/flash-linear-attention, ``fla/modules/convolution.py``): one program per
(time block, channel block, batch) tile, the ``W - 1`` halo rows before the tile read as shifted masked
loads of the same tile (rows before ``x`` come from the cache), taps applied as ``W`` multiply-adds of
``[BT, BC]`` tiles, bias and SiLU fused, no transposes. Our own code; differences from fla: the cache is
``[B, W - 1, C]`` (channels last, like ``x``), the backward recomputes the pre-activation instead of reading a
saved ``y``, and it tiles the padded time axis so ``d x`` and ``d cache`` come from one kernel.

Forward (grid ``(cdiv(T, BT), cdiv(C, BC), B)``)::

    y[t] = act(bias + sum_j w[:, j] * xp[t + j]),   xp = concat(cache, x)
    the programs of time block 0 also write new_cache = xp[T : T + W - 1]

Backward (grid ``(cdiv(T + W - 1, BT), cdiv(C, BC), B)``; a program owns rows ``s`` of ``xp``)::

    g[t]    = dy[t] * act'(pre[t])               (pre recomputed: W shifted loads per needed time shift)
    d xp[s] = sum_k w[:, W-1-k] * g[s - (W-1) + k]  +  d new_cache[s - T]  (s >= T)
    rows s >= W - 1 go to d x[s - (W - 1)], rows s < W - 1 to d cache[s]
    partial d w[:, j] = sum_{s in tile} g[s] * xp[s + j],  partial d bias = sum_{s in tile} g[s]

The partial ``d w`` / ``d bias`` of every program land in a float32 buffer ``[B * NT, C, W]`` (every entry written,
no atomics), summed over its first axis by ``torch.sum`` afterwards. All arithmetic is float32.

Varlen (``cu_seqlens`` ``[N + 1]``, ``B = 1``, cache ``[N, W - 1, C]``; constexpr ``VARLEN``, so the dense kernels
are unchanged): each row looks up its sequence ``n`` in an int32 row-to-sequence index built on the host by
``torch.searchsorted`` (no sync) and that sequence's start ``bos = cu[n]``; halo loads of rows before ``bos`` are
masked off ``x`` and read from ``cache[n]`` instead. The forward writes ``new_cache`` with a second small kernel
(one program per sequence and channel block). The backward tiles the ``T + N (W - 1)`` rows of all
``xp_n = concat(cache_n, x_n)`` back to back, so empty and short sequences get their ``d cache`` rows (including
the ``d new_cache`` that passes through old cache rows) from the same kernel as ``d x``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, next_pow2

BLOCK_C = 64  # channels per program (128 contiguous bytes in bf16 per row)
BLOCK_T = 64  # time rows per program (fewer for short sequences)
NUM_WARPS = 4


@triton.jit
def _load_xp(x_ptr, c_ptr, base_x, base_c, u, m_u, o_c, m_c, T, C,
             W: tl.constexpr, HAS_CACHE: tl.constexpr):
    """Rows ``u`` ``[BT]`` of ``xp = concat(cache, x)`` for channels ``o_c`` as a float32 ``[BT, BC]`` tile.

    Rows outside ``[0, T + W - 1)`` (and cache rows when there is no cache) read as zero.
    """
    r = u - (W - 1)
    m_x = m_u & (r >= 0) & (r < T)
    v = tl.load(x_ptr + base_x + r[:, None] * C + o_c[None, :], mask=m_x[:, None] & m_c[None, :],
                other=0.0).to(tl.float32)
    if HAS_CACHE:
        m_k = m_u & (u >= 0) & (u < W - 1)
        v += tl.load(c_ptr + base_c + u[:, None] * C + o_c[None, :], mask=m_k[:, None] & m_c[None, :],
                     other=0.0).to(tl.float32)
    return v


@triton.jit
def _load_xp_varlen(x_ptr, c_ptr, r, m_r, bos, n, o_c, m_c, C, W: tl.constexpr, HAS_CACHE: tl.constexpr):
    """Packed rows ``r`` ``[BT]`` of ``x`` (``r < eos`` is the caller's mask ``m_r``) of the sequences ``n`` that
    start at ``bos``, as a float32 ``[BT, BC]`` tile: rows before ``bos`` (the ``W - 1`` halo) are that sequence's
    cache rows ``cache[n, W - 1 - (bos - r)]``, never the previous sequence's rows (zeros without a cache).
    """
    v = tl.load(x_ptr + r[:, None] * C + o_c[None, :], mask=(m_r & (r >= bos))[:, None] & m_c[None, :],
                other=0.0).to(tl.float32)
    if HAS_CACHE:
        u = r - bos + (W - 1)
        m_k = m_r & (r < bos) & (u >= 0)
        v += tl.load(c_ptr + (n * (W - 1) + u)[:, None] * C + o_c[None, :], mask=m_k[:, None] & m_c[None, :],
                     other=0.0).to(tl.float32)
    return v


@triton.jit
def _causal_conv1d_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, cache_ptr, y_ptr, nc_ptr, cu_ptr, seq_ptr, T, C,
    W: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_CACHE: tl.constexpr, SILU: tl.constexpr, VARLEN: tl.constexpr,
):
    i_t, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_t = (i_t * BT + tl.arange(0, BT)).to(tl.int64)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    m_t = o_t < T
    base_x = i_b.to(tl.int64) * T * C
    base_c = i_b.to(tl.int64) * (W - 1) * C
    if VARLEN:  # B == 1; row t belongs to sequence seq[t], which starts at cu[seq[t]]
        n = tl.load(seq_ptr + o_t, mask=m_t, other=0).to(tl.int64)
        bos = tl.load(cu_ptr + n, mask=m_t, other=0).to(tl.int64)

    acc = tl.zeros((BT, BC), dtype=tl.float32)
    for j in tl.static_range(W):
        w_j = tl.load(w_ptr + o_c * W + j, mask=m_c, other=0.0).to(tl.float32)
        if VARLEN:
            v = _load_xp_varlen(x_ptr, cache_ptr, o_t + j - (W - 1), m_t, bos, n, o_c, m_c, C, W, HAS_CACHE)
        else:
            v = _load_xp(x_ptr, cache_ptr, base_x, base_c, o_t + j, m_t, o_c, m_c, T, C, W, HAS_CACHE)
        acc += w_j[None, :] * v
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o_c, mask=m_c, other=0.0).to(tl.float32)[None, :]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m = m_t[:, None] & m_c[None, :]
    tl.store(y_ptr + base_x + o_t[:, None] * C + o_c[None, :], acc.to(y_ptr.dtype.element_ty), mask=m)

    if W > 1 and not VARLEN:  # varlen: _causal_conv1d_varlen_cache_kernel
        if i_t == 0:  # new_cache[k] = xp[T + k], k < W - 1 (old cache rows when T < W - 1)
            o_k = tl.arange(0, BK).to(tl.int64)
            m_k = o_k < W - 1
            tail = _load_xp(x_ptr, cache_ptr, base_x, base_c, T + o_k, m_k, o_c, m_c, T, C, W, HAS_CACHE)
            tl.store(nc_ptr + base_c + o_k[:, None] * C + o_c[None, :], tail.to(nc_ptr.dtype.element_ty),
                     mask=m_k[:, None] & m_c[None, :])


@triton.jit
def _causal_conv1d_varlen_cache_kernel(
    x_ptr, cache_ptr, nc_ptr, cu_ptr, C,
    W: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, HAS_CACHE: tl.constexpr,
):
    """new_cache[n, k] = xp_n[L_n + k] = x row eos_n - (W - 1) + k, or cache[n, L_n + k] when that is before bos_n."""
    i_n, i_c = tl.program_id(0).to(tl.int64), tl.program_id(1)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    bos = tl.load(cu_ptr + i_n).to(tl.int64)
    eos = tl.load(cu_ptr + i_n + 1).to(tl.int64)
    o_k = tl.arange(0, BK).to(tl.int64)
    m_k = o_k < W - 1
    v = _load_xp_varlen(x_ptr, cache_ptr, eos - (W - 1) + o_k, m_k, bos, i_n, o_c, m_c, C, W, HAS_CACHE)
    tl.store(nc_ptr + (i_n * (W - 1) + o_k)[:, None] * C + o_c[None, :], v.to(nc_ptr.dtype.element_ty),
             mask=m_k[:, None] & m_c[None, :])


@triton.jit
def _causal_conv1d_bwd_kernel(
    x_ptr, w_ptr, bias_ptr, cache_ptr, dy_ptr, dnc_ptr, dx_ptr, dcache_ptr, dw_ptr, db_ptr, cu_ptr, seq_ptr,
    T, C, NT, TP,
    W: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_CACHE: tl.constexpr, HAS_DNC: tl.constexpr, SILU: tl.constexpr,
    VARLEN: tl.constexpr,
):
    i_t, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    s = (i_t * BT + tl.arange(0, BT)).to(tl.int64)  # rows of xp owned by this program
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    base_x = i_b.to(tl.int64) * T * C
    base_c = i_b.to(tl.int64) * (W - 1) * C
    r = s - (W - 1)  # the rows of x they are (negative: cache rows)
    if VARLEN:  # s runs over the TP = T + N (W - 1) rows of all xp_n back to back; row s is in sequence seq[s]
        m_s = s < TP
        n = tl.load(seq_ptr + s, mask=m_s, other=0).to(tl.int64)
        bos = tl.load(cu_ptr + n, mask=m_s, other=0).to(tl.int64)
        eos = tl.load(cu_ptr + n + 1, mask=m_s, other=0).to(tl.int64)
        r = s - (n + 1) * (W - 1)  # packed row of x (< bos: row W - 1 - (bos - r) of cache[n])
    if HAS_BIAS:
        b_bias = tl.load(bias_ptr + o_c, mask=m_c, other=0.0).to(tl.float32)

    dxp = tl.zeros((BT, BC), dtype=tl.float32)
    for k in tl.static_range(W):
        tau = r + k  # output times whose tap W-1-k reads row s
        if VARLEN:
            m_tau = m_s & (tau >= bos) & (tau < eos)
        else:
            m_tau = (tau >= 0) & (tau < T)
        g = tl.load(dy_ptr + base_x + tau[:, None] * C + o_c[None, :], mask=m_tau[:, None] & m_c[None, :],
                    other=0.0).to(tl.float32)
        if SILU:  # recompute pre[tau] and apply silu'(pre) = sig * (1 + pre * (1 - sig))
            pre = tl.zeros((BT, BC), dtype=tl.float32)
            for i in tl.static_range(W):
                w_i = tl.load(w_ptr + o_c * W + i, mask=m_c, other=0.0).to(tl.float32)
                if VARLEN:
                    v = _load_xp_varlen(x_ptr, cache_ptr, tau + i - (W - 1), m_tau, bos, n, o_c, m_c, C, W,
                                        HAS_CACHE)
                else:
                    v = _load_xp(x_ptr, cache_ptr, base_x, base_c, tau + i, m_tau, o_c, m_c, T, C, W, HAS_CACHE)
                pre += w_i[None, :] * v
            if HAS_BIAS:
                pre += b_bias[None, :]
            sig = tl.sigmoid(pre)
            g = g * sig * (1.0 + pre * (1.0 - sig))
        w_k = tl.load(w_ptr + o_c * W + (W - 1 - k), mask=m_c, other=0.0).to(tl.float32)
        dxp += w_k[None, :] * g
        if k == W - 1:  # tau == r: this program's own output times give its share of d weight and d bias
            pid = i_b.to(tl.int64) * NT + i_t
            if HAS_BIAS:
                tl.store(db_ptr + pid * C + o_c, tl.sum(g, 0), mask=m_c)
            for j in tl.static_range(W):
                if VARLEN:
                    v = _load_xp_varlen(x_ptr, cache_ptr, tau + j - (W - 1), m_tau, bos, n, o_c, m_c, C, W,
                                        HAS_CACHE)
                else:
                    v = _load_xp(x_ptr, cache_ptr, base_x, base_c, s + j, m_tau, o_c, m_c, T, C, W, HAS_CACHE)
                tl.store(dw_ptr + pid * C * W + o_c * W + j, tl.sum(g * v, 0), mask=m_c)
    if VARLEN:
        kk = r - eos + (W - 1)  # row of new_cache[n] that row s became (when the sequence is short: a cache row)
        m_k = m_s & (kk >= 0) & (kk < W - 1)
        m_r = m_s & (r >= bos)
        m_cr = m_s & (r < bos)
        o_cr = n * (W - 1) + (r - bos + (W - 1))
        o_k = n * (W - 1) + kk
    else:
        kk = s - T
        m_k = (kk >= 0) & (kk < W - 1)
        m_r = (r >= 0) & (r < T)
        m_cr = s < W - 1
        o_cr = s
        o_k = kk
    if HAS_DNC:
        dxp += tl.load(dnc_ptr + base_c + o_k[:, None] * C + o_c[None, :],
                       mask=m_k[:, None] & m_c[None, :], other=0.0).to(tl.float32)
    tl.store(dx_ptr + base_x + r[:, None] * C + o_c[None, :], dxp.to(dx_ptr.dtype.element_ty),
             mask=m_r[:, None] & m_c[None, :])
    if HAS_CACHE:
        tl.store(dcache_ptr + base_c + o_cr[:, None] * C + o_c[None, :], dxp.to(dcache_ptr.dtype.element_ty),
                 mask=m_cr[:, None] & m_c[None, :])


def _blocks(rows: int, C: int) -> tuple[int, int]:
    bt = min(BLOCK_T, max(16, next_pow2(max(rows, 1))))
    bc = min(BLOCK_C, max(16, next_pow2(C)))
    return bt, bc


def _row_sequence(cu_seqlens: torch.Tensor, rows: int, pad: int) -> torch.Tensor:
    """Sequence index ``[rows]`` int32 of each row when sequence ``n`` holds rows ``[cu[n] + n pad, cu[n + 1] +
    (n + 1) pad)`` (``pad = 0``: the packed rows of ``x``; ``pad = W - 1``: the rows of the ``xp_n`` back to back).
    Empty sequences hold no rows (``pad = 0``) and are skipped. Tensor ops only, no host sync."""
    n = cu_seqlens.shape[0] - 1
    ends = cu_seqlens[1:] + torch.arange(1, n + 1, device=cu_seqlens.device, dtype=cu_seqlens.dtype) * pad
    t = torch.arange(rows, device=cu_seqlens.device, dtype=cu_seqlens.dtype)
    return torch.searchsorted(ends, t, right=True).to(torch.int32)


def causal_conv1d_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None,
    cache: torch.Tensor | None, cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward launch; inputs checked by the caller (contiguous, ``W >= 1``, ``T, C, B >= 1``; with ``cu_seqlens``
    ``[N + 1]`` valid offsets, ``B = 1`` and ``cache`` ``[N, W - 1, C]``).

    Returns:
        ``(y [B, T, C], new_cache [B or N, W - 1, C])`` in ``x.dtype``.
    """
    B, T, C = x.shape
    W = weight.shape[1]
    varlen = cu_seqlens is not None
    y = torch.empty_like(x)
    new_cache = x.new_empty(cu_seqlens.shape[0] - 1 if varlen else B, W - 1, C)
    if varlen:
        cu_seqlens = cu_seqlens.contiguous()
        seq = _row_sequence(cu_seqlens, T, 0)
    BT, BC = _blocks(T, C)
    BK = next_pow2(max(W - 1, 1))
    has_cache = cache is not None and W > 1
    grid = (cdiv(T, BT), cdiv(C, BC), B)
    _causal_conv1d_fwd_kernel[grid](
        x, weight, bias if bias is not None else x, cache if cache is not None else x, y,
        new_cache if W > 1 else y, cu_seqlens if varlen else x, seq if varlen else x, T, C,
        W=W, BT=BT, BC=BC, BK=BK,
        HAS_BIAS=bias is not None, HAS_CACHE=has_cache, SILU=activation == "silu", VARLEN=varlen,
        num_warps=NUM_WARPS,
    )
    if varlen and W > 1 and new_cache.shape[0] > 0:
        _causal_conv1d_varlen_cache_kernel[(new_cache.shape[0], cdiv(C, BC))](
            x, cache if cache is not None else x, new_cache, cu_seqlens, C,
            W=W, BC=BC, BK=BK, HAS_CACHE=has_cache, num_warps=NUM_WARPS,
        )
    return y, new_cache


def causal_conv1d_bwd(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None,
    cache: torch.Tensor | None, dy: torch.Tensor, dnew_cache: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Backward launch: ``(dx, dweight, dbias or None, dcache or None)`` in the dtypes of the inputs.

    ``dy`` and ``dnew_cache`` must be contiguous; ``dnew_cache`` None means zero. With ``cu_seqlens`` the programs
    tile the ``T + N (W - 1)`` rows of all ``xp_n = concat(cache_n, x_n)`` back to back.
    """
    B, T, C = x.shape
    W = weight.shape[1]
    varlen = cu_seqlens is not None
    TP = T + (cu_seqlens.shape[0] - 1) * (W - 1) if varlen else T + W - 1  # xp rows per batch entry
    if varlen:
        cu_seqlens = cu_seqlens.contiguous()
        seq = _row_sequence(cu_seqlens, TP, W - 1)
    BT, BC = _blocks(TP, C)
    NT = cdiv(TP, BT)
    dx = torch.empty_like(x)
    dcache = torch.empty_like(cache) if cache is not None else None
    dw_part = x.new_empty(B * NT, C, W, dtype=torch.float32)
    db_part = x.new_empty(B * NT, C, dtype=torch.float32) if bias is not None else None
    has_dnc = dnew_cache is not None and W > 1
    grid = (NT, cdiv(C, BC), B)
    _causal_conv1d_bwd_kernel[grid](
        x, weight, bias if bias is not None else x, cache if cache is not None else x, dy,
        dnew_cache if has_dnc else dy, dx, dcache if (dcache is not None and W > 1) else dx, dw_part,
        db_part if db_part is not None else dw_part, cu_seqlens if varlen else x, seq if varlen else x,
        T, C, NT, TP if varlen else 0,
        W=W, BT=BT, BC=BC, HAS_BIAS=bias is not None, HAS_CACHE=cache is not None and W > 1, HAS_DNC=has_dnc,
        SILU=activation == "silu", VARLEN=varlen, num_warps=NUM_WARPS,
    )
    dw = dw_part.sum(0).to(weight.dtype)
    db = db_part.sum(0).to(bias.dtype) if db_part is not None else None
    return dx, dw, db, dcache
