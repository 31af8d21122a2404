"""Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on ``[B, T, D]`` (D contiguous).

One program owns one (sequence, channel block) and walks the time axis in tiles of ``BLOCK_T`` steps: a tile
of gates and inputs is loaded with vectorised channel loads, scanned along time with ``tl.associative_scan``
(combine ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``), offset by the carried state and stored; the last row
becomes the next carry. Every element is read and written once: the forward moves 3 tensors (a, b in; h out),
the backward 5 (a, do, h in; da, db out), so both are bound by memory bandwidth. Accumulation is float32.

Backward (reverse scan of the output gradient, with the gate shifted one step)::

    dh_t = do_t + a_{t+1} dh_{t+1}      (dh_{T-1} also receives d h_T)
    da_t = dh_t h_{t-1}   (d log a_t = da_t a_t),   db_t = dh_t,   d h0 = a_0 dh_0

Varlen: program ``n`` reads ``cu_seqlens[n], cu_seqlens[n + 1]``. ``REVERSE`` maps scan position ``p`` to
time ``eos - 1 - p`` so right-to-left scans need no copy.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode


def _configs() -> list[triton.Config]:
    if interpret_mode():
        return [triton.Config({"BLOCK_T": 16, "BLOCK_D": 32}, num_warps=1)]
    return [
        triton.Config({"BLOCK_T": bt, "BLOCK_D": bd}, num_warps=w, num_stages=1)
        for bt, bd in ((64, 8), (128, 8), (32, 16), (64, 16), (32, 32))
        for w in (2, 4)
    ]


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.autotune(configs=_configs(), key=["D", "LOG_A", "IS_VARLEN"])
@triton.jit
def _scan1_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, cu_ptr, T, D,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    i_d = tl.program_id(0)
    i_n = tl.program_id(1)
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        eos = tl.load(cu_ptr + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    L = eos - bos
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    m_d = o_d < D
    rows = tl.arange(0, BLOCK_T)
    h = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_H0:
        h += tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    n_tiles = tl.cdiv(L, BLOCK_T)
    for i in range(0, n_tiles):
        p = tl.cast(i, tl.int64) * BLOCK_T + rows  # scan positions of this tile
        m_t = p < L
        if REVERSE:
            t = eos - 1 - p
        else:
            t = bos + p
        offs = t[:, None] * D + o_d[None, :]
        mask = m_t[:, None] & m_d[None, :]
        if LOG_A:
            a = tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        else:
            a = tl.load(a_ptr + offs, mask=mask, other=1.0).to(tl.float32)
        b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ca, cb = tl.associative_scan((a, b), 0, _combine)
        hs = ca * h[None, :] + cb
        tl.store(h_ptr + offs, hs.to(h_ptr.dtype.element_ty), mask=mask)
        # masked rows are identity steps, so the last row holds the last valid state
        h = tl.sum(tl.where(rows[:, None] == BLOCK_T - 1, hs, 0.0), axis=0)
    if STORE_FINAL:
        tl.store(ht_ptr + i_n * D + o_d, h, mask=m_d)


@triton.autotune(configs=_configs(), key=["D", "LOG_A", "IS_VARLEN"], reset_to_zero=[])
@triton.jit
def _scan1_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, cu_ptr, T, D,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    i_d = tl.program_id(0)
    i_n = tl.program_id(1)
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        eos = tl.load(cu_ptr + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    L = eos - bos
    o_d = i_d * BLOCK_D + tl.arange(0, BLOCK_D)
    m_d = o_d < D
    rows = tl.arange(0, BLOCK_T)
    dh = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_DHT:
        dh += tl.load(dht_ptr + i_n * D + o_d, mask=m_d, other=0.0)
    h0 = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_H0:
        h0 += tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    n_tiles = tl.cdiv(L, BLOCK_T)
    for j in range(0, n_tiles):
        p = L - 1 - tl.cast(j, tl.int64) * BLOCK_T - rows  # descending scan positions
        m_t = p >= 0
        if REVERSE:
            t = eos - 1 - p
            t_next = t - 1  # time of scan position p + 1
            t_prev = t + 1  # time of scan position p - 1
        else:
            t = bos + p
            t_next = t + 1
            t_prev = t - 1
        mask = m_t[:, None] & m_d[None, :]
        offs = t[:, None] * D + o_d[None, :]
        do = tl.load(do_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        m_next = (m_t & (p + 1 < L))[:, None] & m_d[None, :]
        if LOG_A:
            gate = tl.exp(tl.load(a_ptr + t_next[:, None] * D + o_d[None, :], mask=m_next, other=0.0).to(tl.float32))
        else:
            gate = tl.load(a_ptr + t_next[:, None] * D + o_d[None, :], mask=m_next, other=1.0).to(tl.float32)
        ca, cb = tl.associative_scan((gate, do), 0, _combine)
        dhs = ca * dh[None, :] + cb
        dh = tl.sum(tl.where(rows[:, None] == BLOCK_T - 1, dhs, 0.0), axis=0)
        m_prev = (m_t & (p >= 1))[:, None] & m_d[None, :]
        hp = tl.load(h_ptr + t_prev[:, None] * D + o_d[None, :], mask=m_prev, other=0.0).to(tl.float32)
        if HAS_H0:
            hp += tl.where((p == 0)[:, None], h0[None, :], 0.0)
        da = dhs * hp
        if LOG_A:
            da = da * tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        tl.store(da_ptr + offs, da.to(da_ptr.dtype.element_ty), mask=mask)
        tl.store(db_ptr + offs, dhs.to(db_ptr.dtype.element_ty), mask=mask)
    if HAS_H0:
        if REVERSE:
            t0 = eos - 1
        else:
            t0 = bos
        if LOG_A:
            a0 = tl.exp(tl.load(a_ptr + t0 * D + o_d, mask=m_d, other=0.0).to(tl.float32))
        else:
            a0 = tl.load(a_ptr + t0 * D + o_d, mask=m_d, other=0.0).to(tl.float32)
        tl.store(dh0_ptr + i_n * D + o_d, a0 * dh, mask=m_d)


def scan1_fwd(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, cu_seqlens: torch.Tensor | None,
    log_a: bool, reverse: bool, output_final_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward kernel. Inputs are validated by the caller. Returns ``(h, h_T or None)``."""
    B, T, D = b.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    h = torch.empty_like(b)
    ht = b.new_empty(N, D, dtype=torch.float32) if output_final_state else None
    grid = lambda meta: (triton.cdiv(D, meta["BLOCK_D"]), N)  # noqa: E731
    _scan1_fwd_kernel[grid](
        a, b, h0, h, ht, cu_seqlens, T, D,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse,
    )
    return h, ht


def scan1_bwd(
    a: torch.Tensor, h0: torch.Tensor | None, h: torch.Tensor, do: torch.Tensor, dht: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, log_a: bool, reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Launch the backward kernel. Returns ``(da or dlog_a, db, dh0 or None)``."""
    B, T, D = h.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    da = torch.empty_like(a)
    db = torch.empty_like(h)
    dh0 = torch.empty_like(h0, dtype=torch.float32) if h0 is not None else None
    grid = lambda meta: (triton.cdiv(D, meta["BLOCK_D"]), N)  # noqa: E731
    _scan1_bwd_kernel[grid](
        a, h0, h, do, dht, da, db, dh0, cu_seqlens, T, D,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse,
    )
    return da, db, dh0
