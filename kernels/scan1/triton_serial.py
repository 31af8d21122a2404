"""Serial-in-time Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on ``[B, T, D]`` (D contiguous).

The second GPU form of ``scan1`` beside the chunked look-back scan of ``triton_scan.py``. One program owns one
(sequence, block of ``BD`` channels) pair and walks the whole sequence in ``[CT, BD]`` tiles, carrying the
float32 state between tiles in registers. That is the layout of accelerated-scan 0.3.1's Triton kernel
(``accelerated_scan/scalar.py``: one program per (batch, channel) row walking ``BLOCK``-step blocks with a
carried ``h0``), transposed to our time-major ``[B, T, D]`` tensors: there a row is contiguous in time, here
a tile row is ``BD`` contiguous channels.

* Traffic is the minimum: ``a`` and ``b`` read once, ``h`` written once (3 passes forward; the backward reads
  ``a``, ``h``, ``do`` and writes ``da``, ``db``: 5 passes, plus an L2-resident re-read of ``a`` shifted by one
  step). No workspace, no atomics, no inter-program waiting.
* Parallelism is ``N * D / BD`` programs; each tile's loads do not depend on the carried state, so the loop is
  software-pipelined (``tl.range(..., num_stages=STAGES)``) to keep several tiles in flight per program.
* Varlen packs are walked per sequence (``cu_seqlens``, FlashAttention convention): program ``n`` scans rows
  ``cu[n] .. cu[n+1]``; ``REVERSE`` walks each sequence from its end; initial and final states are per
  sequence. All arithmetic and carries are float32.

Backward, per sequence in scan order (``g_L := dh_T``, ``a_L := 1``)::

    g_p = do_p + a_{p+1} g_{p+1},  db_p = g_p,  da_p = g_p h_{p-1} (h0 at p = 0),  d log a_p = da_p a_p,
    d h0 = a_0 g_0
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _bounds(cu_ptr, i_n, T, IS_VARLEN: tl.constexpr):
    if IS_VARLEN:
        bos = tl.load(cu_ptr + i_n).to(tl.int64)
        eos = tl.load(cu_ptr + i_n + 1).to(tl.int64)
    else:
        bos = i_n.to(tl.int64) * T
        eos = bos + T
    return bos, eos - bos


@triton.jit
def _tile_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE: tl.constexpr):
    """Offsets and mask of tile ``j`` (scan positions ``j*CT ..``; rows past the sequence are masked)."""
    pl = j * rows.shape[0] + rows
    if REVERSE:
        r = bos + L - 1 - pl
    else:
        r = bos + pl
    return r[:, None] * D + o_d[None, :], (pl < L)[:, None] & m_d[None, :]


@triton.jit
def _fwd_tile(a_ptr, b_ptr, j, bos, L, rows, o_d, m_d, D, LOG_A: tl.constexpr, REVERSE: tl.constexpr):
    """Raw ``a`` (or ``log a``) and ``b`` of tile ``j``; padding rows read as the identity step (a = 1, b = 0)."""
    offs, mask = _tile_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0 if LOG_A else 1.0)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    return a, b


@triton.jit
def _scan1_serial_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, cu_ptr, T, D,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, STAGES: tl.constexpr,
):
    i_d = tl.program_id(0)
    i_n = tl.program_id(1)
    bos, L = _bounds(cu_ptr, i_n, T, IS_VARLEN)
    rows = tl.arange(0, CT)
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    if HAS_H0:
        h = tl.load(h0_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BD], tl.float32)
    nch = tl.cdiv(L, CT)
    a_n, b_n = _fwd_tile(a_ptr, b_ptr, 0, bos, L, rows, o_d, m_d, D, LOG_A, REVERSE)
    for j in tl.range(0, nch, num_stages=STAGES):
        if STAGES > 1:  # register double buffer: the next tile's loads are in flight during this tile's scan
            a_raw, b_raw = a_n, b_n
            a_n, b_n = _fwd_tile(a_ptr, b_ptr, j + 1, bos, L, rows, o_d, m_d, D, LOG_A, REVERSE)
        else:
            a_raw, b_raw = _fwd_tile(a_ptr, b_ptr, j, bos, L, rows, o_d, m_d, D, LOG_A, REVERSE)
        offs, mask = _tile_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE)
        if LOG_A:
            a = tl.exp(a_raw.to(tl.float32))
        else:
            a = a_raw.to(tl.float32)
        ca, cb = tl.associative_scan((a, b_raw.to(tl.float32)), 0, _combine)
        hs = ca * h[None, :] + cb
        tl.store(h_ptr + offs, hs.to(h_ptr.dtype.element_ty), mask=mask)
        h = tl.sum(tl.where(rows[:, None] == CT - 1, hs, 0.0), axis=0)
    if STORE_FINAL:
        tl.store(ht_ptr + i_n * D + o_d, h, mask=m_d)


@triton.jit
def _bwd_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE: tl.constexpr):
    """Tile ``j`` of the backward walk: rows in descending scan position (row 0 is the chunk's last one)."""
    CT: tl.constexpr = rows.shape[0]
    pl = j * CT + CT - 1 - rows
    if REVERSE:
        r = bos + L - 1 - pl
    else:
        r = bos + pl
    return r[:, None] * D + o_d[None, :], ((pl < L) & (pl >= 0))[:, None] & m_d[None, :], pl


@triton.jit
def _bwd_tile(a_ptr, h_ptr, do_ptr, j, bos, L, rows, o_d, m_d, D, LOG_A: tl.constexpr, REVERSE: tl.constexpr):
    """Raw ``do``, the next step's gate (1 at the sequence end and on padding rows: ``g_L = dh_T``), the previous
    state (0 at the start, where h0 enters) and, for log gates, this step's ``log a`` of tile ``j``."""
    offs, mask, pl = _bwd_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE)
    if REVERSE:
        step = -D
    else:
        step = D
    do = tl.load(do_ptr + offs, mask=mask, other=0.0)
    m_next = ((pl + 1) < L)[:, None] & mask
    gate = tl.load(a_ptr + offs + step, mask=m_next, other=0.0 if LOG_A else 1.0)
    hp = tl.load(h_ptr + offs - step, mask=(pl > 0)[:, None] & mask, other=0.0)
    if LOG_A:
        ah = tl.load(a_ptr + offs, mask=mask, other=0.0)
    else:
        ah = gate
    return do, gate, hp, ah


@triton.jit
def _scan1_serial_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, cu_ptr, T, D,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, STAGES: tl.constexpr,
):
    i_d = tl.program_id(0)
    i_n = tl.program_id(1)
    bos, L = _bounds(cu_ptr, i_n, T, IS_VARLEN)
    rows = tl.arange(0, CT)
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    if HAS_DHT:
        g = tl.load(dht_ptr + i_n * D + o_d, mask=m_d, other=0.0).to(tl.float32)
    else:
        g = tl.zeros([BD], tl.float32)
    nch = tl.cdiv(L, CT)
    n_do, n_gate, n_hp, n_ah = _bwd_tile(a_ptr, h_ptr, do_ptr, nch - 1, bos, L, rows, o_d, m_d, D, LOG_A, REVERSE)
    for jj in tl.range(0, nch, num_stages=STAGES):
        j = nch - 1 - jj
        if STAGES > 1:  # register double buffer, as in the forward
            do_raw, gate_raw, hp_raw, ah_raw = n_do, n_gate, n_hp, n_ah
            n_do, n_gate, n_hp, n_ah = _bwd_tile(a_ptr, h_ptr, do_ptr, j - 1, bos, L, rows, o_d, m_d, D, LOG_A,
                                                 REVERSE)
        else:
            do_raw, gate_raw, hp_raw, ah_raw = _bwd_tile(a_ptr, h_ptr, do_ptr, j, bos, L, rows, o_d, m_d, D, LOG_A,
                                                         REVERSE)
        offs, mask, pl = _bwd_offsets(j, bos, L, rows, o_d, m_d, D, REVERSE)
        if LOG_A:
            gate = tl.exp(gate_raw.to(tl.float32))
        else:
            gate = gate_raw.to(tl.float32)
        ca, cb = tl.associative_scan((gate, do_raw.to(tl.float32)), 0, _combine)
        gs = ca * g[None, :] + cb
        g = tl.sum(tl.where(rows[:, None] == CT - 1, gs, 0.0), axis=0)
        hp = hp_raw.to(tl.float32)
        is_start = (pl == 0)[:, None] & m_d[None, :]
        if HAS_H0:
            hp += tl.load(h0_ptr + i_n * D + o_d[None, :] + rows[:, None] * 0, mask=is_start, other=0.0).to(tl.float32)
        da = gs * hp
        if LOG_A:
            a_here = tl.exp(ah_raw.to(tl.float32))
            da = da * a_here
        tl.store(da_ptr + offs, da.to(da_ptr.dtype.element_ty), mask=mask)
        tl.store(db_ptr + offs, gs.to(db_ptr.dtype.element_ty), mask=mask)
        if HAS_H0:
            if LOG_A:
                a_s = a_here
            else:
                a_s = tl.load(a_ptr + offs, mask=is_start, other=0.0).to(tl.float32)
            tl.store(dh0_ptr + i_n * D + o_d[None, :] + rows[:, None] * 0, a_s * gs, mask=is_start)
    if HAS_H0:
        if L == 0:  # an empty sequence: h_T = h0
            tl.store(dh0_ptr + i_n * D + o_d, g, mask=m_d)


def scan1_serial_fwd(a, b, h0, cu_seqlens, log_a, reverse, output_final_state, cfg):
    """Launch the serial forward. ``cfg = (CT, BD, num_warps, stages)``. Returns ``(h, h_T or None)``;
    ``T == 0`` is handled by the caller."""
    B, T, D = b.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    ct, bd, warps, stages = cfg
    h = torch.empty_like(b)
    ht = b.new_empty(N, D, dtype=torch.float32) if output_final_state else None
    _scan1_serial_fwd_kernel[(triton.cdiv(D, bd), N)](
        a, b, h0, h, ht, cu_seqlens, T, D,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, STAGES=stages, num_warps=warps,
    )
    return h, ht


def scan1_serial_bwd(a, h0, h, do, dht, cu_seqlens, log_a, reverse, cfg):
    """Launch the serial backward. Returns ``(da or dlog_a, db, dh0 or None)``."""
    B, T, D = h.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    ct, bd, warps, stages = cfg
    da = torch.empty_like(a)
    db = torch.empty_like(h)
    dh0 = torch.zeros_like(h0, dtype=torch.float32) if h0 is not None else None
    _scan1_serial_bwd_kernel[(triton.cdiv(D, bd), N)](
        a, h0, h, do, dht, da, db, dh0, cu_seqlens, T, D,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, STAGES=stages, num_warps=warps,
    )
    return da, db, dh0
