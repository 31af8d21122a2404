"""Single-pass Triton kernels for ``h_t = a_t * h_{t-1} + b_t`` on ``[B, T, D]`` (D contiguous).

Design (a chained scan with decoupled look-back, Merrill & Garland, "Single-pass Parallel Prefix Scan with
Decoupled Look-back", NVIDIA 2016; the CUB ``DeviceScan`` scheme, here per channel block):

* The time axis of every sequence is cut into chunks of ``CT`` steps; one program owns one
  (chunk, sequence, channel block of ``BD``) tile, so there are ``B * T / CT * D / BD`` programs and every
  element of ``a`` and ``b`` is read from HBM once and ``h`` written once (3 passes forward; the backward
  reads ``a``, ``h``, ``do`` and writes ``da``, ``db``: 5 passes). That is what makes the op bound by memory
  bandwidth instead of by a sequential walk over T.
* A program loads its tile, scans it along time with ``tl.associative_scan`` (combine
  ``(a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2)``), and publishes the tile's aggregate ``(A, B)`` (the affine
  map from the state entering the chunk to the state leaving it). It then looks back over the preceding
  chunks of its sequence, composing their aggregates until it meets one whose inclusive state is already
  published, which gives its carry-in; it publishes its own inclusive state and writes
  ``h = A_cum * carry + B_cum``. Each published word packs a float32 value with a ready flag in one 64-bit
  store, so readers need no fences.
* Programs take their work from an atomic ticket counter in launch order (chunk index slowest), so a chunk
  only ever waits on chunks whose programs are already running: no deadlock, whatever the scheduler does.
* Sequence starts are resets (``a := 0``, ``b := b + a h0``), so variable-length packed sequences
  (``cu_seqlens``), initial states and right-to-left scans (``REVERSE`` maps scan position ``p`` to time
  ``T - 1 - p``) all reduce to the same scan with no copies. A chunk containing a reset publishes its
  inclusive state at once, which also bounds every look-back.

Backward, in scan order (``a'`` is the gate with resets, ``do'`` adds ``d h_T`` at sequence ends)::

    g_p = do'_p + a'_{p+1} g_{p+1}        (a reverse scan: the same machinery walking chunks backwards)
    db_p = g_p,  da_p = g_p h_{p-1}  (h0 at a sequence start),  d log a_p = da_p a_p,  d h0 = a_start g_start

All arithmetic and carries are float32.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import interpret_mode



@triton.jit
def _compose(a1, b1, a2, b2):
    """Affine maps, element 1 later in time: ``s -> a1 (a2 s + b2) + b1``."""
    return a1 * a2, a1 * b2 + b1


@triton.jit
def _ticket(cnt_ptr, nD, NSEQ, NCH, BACKWARD: tl.constexpr):
    """Work item of this program, in launch order: chunk index slowest, so predecessors started earlier."""
    t = tl.atomic_add(cnt_ptr, 1).to(tl.int64)
    i_d = t % nD
    rest = t // nD
    i_n = rest % NSEQ
    j = rest // NSEQ
    if BACKWARD:
        j = NCH - 1 - j
    return i_d, i_n, j


@triton.jit
def _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, x_a, x_b, INCLUSIVE: tl.constexpr):
    """Store an aggregate ``(x_a, x_b)`` (flag 1) or an inclusive state ``x_b`` (flag 2), then raise the flag.

    All threads store, a CTA barrier orders the stores before thread 0's release of the flag (the CUTLASS
    ``GenericBarrier`` pattern: ``__syncthreads(); red.release.gpu``).
    """
    base = vals_ptr + cid * 3 * D + o_d
    if INCLUSIVE:
        tl.store(base + 2 * D, x_b, mask=m_d)
    else:
        tl.store(base, x_a, mask=m_d)
        tl.store(base + D, x_b, mask=m_d)
    tl.debug_barrier()
    if INCLUSIVE:
        tl.atomic_xchg(flag_ptr + cid * nD + i_d, 2, sem="release", scope="gpu")
    else:
        tl.atomic_xchg(flag_ptr + cid * nD + i_d, 1, sem="release", scope="gpu")


@triton.jit
def _look_back(vals_ptr, flag_ptr, cid, step, n_chunks, i_d, nD, D, o_d, m_d, K: tl.constexpr):
    """Carry-in of chunk ``cid``: compose the predecessors ``cid - step, cid - 2 step, ...`` (K per round
    trip) up to the nearest one whose inclusive state is published; poll while a nearer one has published
    nothing yet."""
    ks = tl.arange(0, K)
    acc_a = tl.full(o_d.shape, 1.0, tl.float32)
    acc_b = tl.zeros(o_d.shape, tl.float32)
    carry = tl.zeros(o_d.shape, tl.float32)
    hi = cid - step
    go = 1
    while go == 1:
        kk = hi - step * ks
        inb = (kk >= 0) & (kk < n_chunks)
        f = tl.atomic_add(flag_ptr + kk * nD + i_d, 0, mask=inb, sem="acquire", scope="gpu")
        f = tl.where(inb, f, 2)
        i_inc = tl.min(tl.where(f == 2, ks, K), axis=0)
        i_zero = tl.min(tl.where(f == 0, ks, K), axis=0)
        if i_zero >= i_inc:
            tl.debug_barrier()
            use = (ks < i_inc) & inb
            inc = (ks == i_inc) & inb
            rows = (kk * 3)[:, None] * D + o_d[None, :]
            m2 = m_d[None, :]
            t_a = tl.load(vals_ptr + rows, mask=use[:, None] & m2, other=1.0, volatile=True)
            t_b = tl.load(vals_ptr + rows + D, mask=use[:, None] & m2, other=0.0, volatile=True)
            t_b += tl.load(vals_ptr + rows + 2 * D, mask=inc[:, None] & m2, other=0.0, volatile=True)
            t_a = tl.where((ks == i_inc)[:, None], 0.0, t_a)
            c_a, c_b = tl.associative_scan((t_a, t_b), 0, _compose)
            last = (ks == K - 1)[:, None]
            r_a = tl.sum(tl.where(last, c_a, 0.0), axis=0)
            r_b = tl.sum(tl.where(last, c_b, 0.0), axis=0)
            acc_b = acc_a * r_b + acc_b
            acc_a = acc_a * r_a
            if i_inc < K:
                carry = acc_b
                go = 0
            else:
                hi = hi - step * K
    return carry


@triton.jit
def _row_flags(p, L, i_n, seq_ptr, cu_ptr, IS_VARLEN: tl.constexpr, REVERSE: tl.constexpr):
    """Scalars for scan position ``p``: its row, sequence, and whether it starts / ends its sequence."""
    valid = p < L
    if REVERSE:
        r = i_n * L + L - 1 - p
    else:
        r = i_n * L + p
    if IS_VARLEN:
        seq = tl.load(seq_ptr + r, mask=valid, other=0).to(tl.int64)
        first = tl.load(cu_ptr + seq, mask=valid, other=0).to(tl.int64)
        last = tl.load(cu_ptr + seq + 1, mask=valid, other=1).to(tl.int64) - 1
        if REVERSE:
            is_start = r == last
            is_end = r == first
        else:
            is_start = r == first
            is_end = r == last
    else:
        seq = i_n
        is_start = p == 0
        is_end = p == L - 1
    return valid, r, seq, is_start & valid, is_end & valid


@triton.jit
def _gate(a_ptr, offs, mask, LOG_A: tl.constexpr):
    if LOG_A:
        return tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
    return tl.load(a_ptr + offs, mask=mask, other=1.0).to(tl.float32)


@triton.jit
def _scan1_fwd_kernel(
    a_ptr, b_ptr, h0_ptr, h_ptr, ht_ptr, seq_ptr, cu_ptr, vals_ptr, flag_ptr, cnt_ptr, L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, K: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
):
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, False)
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    cid = i_n * NCH + j
    # walk 1: the chunk's aggregate map (A, B) and whether a sequence starts inside it
    agg_a = tl.full([BD], 1.0, tl.float32)
    agg_b = tl.zeros([BD], tl.float32)
    has_reset = 0
    first_is_start = 0
    for i in tl.static_range(CT):
        valid, r, seq, is_start, is_end = _row_flags(j * CT + i, L, i_n, seq_ptr, cu_ptr, IS_VARLEN, REVERSE)
        m = m_d & valid
        a = _gate(a_ptr, r * D + o_d, m, LOG_A)
        b = tl.load(b_ptr + r * D + o_d, mask=m, other=0.0).to(tl.float32)
        if HAS_H0:
            b += a * tl.load(h0_ptr + seq * D + o_d, mask=m & is_start, other=0.0).to(tl.float32)
        a = tl.where(is_start, 0.0, a)
        agg_b = a * agg_b + b
        agg_a = a * agg_a
        has_reset = has_reset | is_start.to(tl.int32)
        if i == 0:
            first_is_start = is_start.to(tl.int32)
    n_chunks = NSEQ * NCH
    if has_reset == 1:  # the chunk's end state does not depend on its carry-in
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_b, True)
    else:
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_b, False)
    h = tl.zeros([BD], tl.float32)
    if first_is_start == 0:
        h = _look_back(vals_ptr, flag_ptr, cid, 1, n_chunks, i_d, nD, D, o_d, m_d, K)
    if (has_reset == 0) & (not NO_INCLUSIVE):
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_a * h + agg_b, True)
    # walk 2: the states (the tile is in L1 from walk 1)
    for i in tl.static_range(CT):
        valid, r, seq, is_start, is_end = _row_flags(j * CT + i, L, i_n, seq_ptr, cu_ptr, IS_VARLEN, REVERSE)
        m = m_d & valid
        a = _gate(a_ptr, r * D + o_d, m, LOG_A)
        b = tl.load(b_ptr + r * D + o_d, mask=m, other=0.0).to(tl.float32)
        if HAS_H0:
            b += a * tl.load(h0_ptr + seq * D + o_d, mask=m & is_start, other=0.0).to(tl.float32)
        a = tl.where(is_start, 0.0, a)
        h = a * h + b
        tl.store(h_ptr + r * D + o_d, h.to(h_ptr.dtype.element_ty), mask=m)
        if STORE_FINAL:
            tl.store(ht_ptr + seq * D + o_d, h, mask=m & is_end)


@triton.jit
def _bwd_row(a_ptr, do_ptr, dht_ptr, p, L, i_n, seq_ptr, cu_ptr, D, o_d, m_d,
             LOG_A: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr, REVERSE: tl.constexpr):
    """Gate of the next scan position (0 where this row ends its sequence) and the output gradient."""
    valid, r, seq, is_start, is_end = _row_flags(p, L, i_n, seq_ptr, cu_ptr, IS_VARLEN, REVERSE)
    m = m_d & valid
    if REVERSE:
        r_next = r - 1
    else:
        r_next = r + 1
    gate = _gate(a_ptr, r_next * D + o_d, m & (is_end == 0), LOG_A)
    gate = tl.where(is_end, 0.0, gate)
    do = tl.load(do_ptr + r * D + o_d, mask=m, other=0.0).to(tl.float32)
    if HAS_DHT:
        do += tl.load(dht_ptr + seq * D + o_d, mask=m & is_end, other=0.0)
    return valid, r, seq, is_start, is_end, m, gate, do


@triton.jit
def _scan1_bwd_kernel(
    a_ptr, h0_ptr, h_ptr, do_ptr, dht_ptr, da_ptr, db_ptr, dh0_ptr, seq_ptr, cu_ptr, vals_ptr, flag_ptr,
    cnt_ptr, L, D, NSEQ, NCH, nD,
    LOG_A: tl.constexpr, HAS_H0: tl.constexpr, HAS_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
    REVERSE: tl.constexpr, CT: tl.constexpr, BD: tl.constexpr, K: tl.constexpr, NO_INCLUSIVE: tl.constexpr,
):
    i_d, i_n, j = _ticket(cnt_ptr, nD, NSEQ, NCH, True)
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    cid = i_n * NCH + j
    agg_a = tl.full([BD], 1.0, tl.float32)
    agg_b = tl.zeros([BD], tl.float32)
    has_reset = 0
    first_is_end = 0
    for i in tl.static_range(CT):  # descending scan positions
        p = j * CT + CT - 1 - i
        valid, r, seq, is_start, is_end, m, gate, do = _bwd_row(a_ptr, do_ptr, dht_ptr, p, L, i_n, seq_ptr,
                                                                cu_ptr, D, o_d, m_d, LOG_A, HAS_DHT, IS_VARLEN,
                                                                REVERSE)
        agg_b = gate * agg_b + do
        agg_a = gate * agg_a
        has_reset = has_reset | is_end.to(tl.int32)
        if i == 0:
            first_is_end = (is_end | (valid == 0)).to(tl.int32)
    n_chunks = NSEQ * NCH
    if has_reset == 1:
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_b, True)
    else:
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_b, False)
    g = tl.zeros([BD], tl.float32)
    if first_is_end == 0:
        g = _look_back(vals_ptr, flag_ptr, cid, -1, n_chunks, i_d, nD, D, o_d, m_d, K)
    if (has_reset == 0) & (not NO_INCLUSIVE):
        _publish(vals_ptr, flag_ptr, cid, i_d, nD, D, o_d, m_d, agg_a, agg_a * g + agg_b, True)
    for i in tl.static_range(CT):
        p = j * CT + CT - 1 - i
        valid, r, seq, is_start, is_end, m, gate, do = _bwd_row(a_ptr, do_ptr, dht_ptr, p, L, i_n, seq_ptr,
                                                                cu_ptr, D, o_d, m_d, LOG_A, HAS_DHT, IS_VARLEN,
                                                                REVERSE)
        g = gate * g + do
        if REVERSE:
            r_prev = r + 1
        else:
            r_prev = r - 1
        hp = tl.load(h_ptr + r_prev * D + o_d, mask=m & (is_start == 0), other=0.0).to(tl.float32)
        if HAS_H0:
            hp += tl.load(h0_ptr + seq * D + o_d, mask=m & is_start, other=0.0).to(tl.float32)
        da = g * hp
        if LOG_A or HAS_H0:
            a_here = _gate(a_ptr, r * D + o_d, m, LOG_A)
        if LOG_A:
            da = da * a_here
        tl.store(da_ptr + r * D + o_d, da.to(da_ptr.dtype.element_ty), mask=m)
        tl.store(db_ptr + r * D + o_d, g.to(db_ptr.dtype.element_ty), mask=m)
        if HAS_H0:
            tl.store(dh0_ptr + seq * D + o_d, a_here * g, mask=m & is_start)


def _config(dtype: torch.dtype, D: int) -> tuple[int, int, int, int]:
    """``(CT, BD, num_warps, K)``: rows per chunk, channels per program (one 16-byte vector per thread, so
    every row load is one coalesced transaction per warp), warps, look-back window.
    ``SEQLAB_SCAN1_CFG=CT,BD,W[,K]`` overrides (for tuning sweeps)."""
    env = os.environ.get("SEQLAB_SCAN1_CFG")
    if env:
        v = [int(x) for x in env.split(",")]
        return v[0], v[1], v[2], (v[3] if len(v) > 3 else 16)
    if interpret_mode():
        return 8, 16, 1, 4
    vec = 16 // torch.tensor([], dtype=dtype).element_size()
    bd = min(vec * 32 * 4, max(16, triton.next_power_of_2(D)))
    warps = max(1, bd // (vec * 32))
    return 32, bd, warps, 16


def _lookback_test() -> bool:
    """``SEQLAB_SCAN1_LOOKBACK_TEST=1``: chunks publish only aggregates (and inclusive states where a sequence
    starts), so every look-back composes aggregates back to the sequence start. Tests use it to exercise the
    path that concurrent GPU programs take but the sequential interpreter never would."""
    return os.environ.get("SEQLAB_SCAN1_LOOKBACK_TEST") == "1"


def _geometry(b: torch.Tensor, cu_seqlens: torch.Tensor | None, ct: int, bd: int):
    B, T, D = b.shape
    if cu_seqlens is None:
        nseq, L, seq_idx = B, T, None
    else:
        nseq, L = 1, T
        pos = torch.arange(T, device=b.device, dtype=cu_seqlens.dtype)
        seq_idx = torch.searchsorted(cu_seqlens[1:], pos, right=True).to(torch.int32)
    nch = triton.cdiv(max(L, 1), ct)
    nd = triton.cdiv(D, bd)
    # published values (3 rows of D per chunk: aggregate A, aggregate B, inclusive state) need no init;
    # flags (one per chunk x channel block) and the ticket counter start at zero
    vals = torch.empty(nseq * nch * 3 * D, device=b.device, dtype=torch.float32)
    flags = torch.zeros(nseq * nch * nd + 1, device=b.device, dtype=torch.int32)
    return nseq, L, nch, nd, seq_idx, vals, flags


def scan1_fwd(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, cu_seqlens: torch.Tensor | None,
    log_a: bool, reverse: bool, output_final_state: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward kernel. Inputs are validated by the caller. Returns ``(h, h_T or None)``."""
    B, T, D = b.shape
    N = B if cu_seqlens is None else cu_seqlens.numel() - 1
    h = torch.empty_like(b)
    ht = b.new_empty(N, D, dtype=torch.float32) if output_final_state else None
    if T == 0:
        if ht is not None:
            ht.copy_(h0 if h0 is not None else torch.zeros_like(ht))
        return h, ht
    ct, bd, warps, k = _config(b.dtype, D)
    nseq, L, nch, nd, seq_idx, vals, flags = _geometry(b, cu_seqlens, ct, bd)
    _scan1_fwd_kernel[(nseq * nch * nd,)](
        a, b, h0, h, ht, seq_idx, cu_seqlens, vals, flags, flags[-1:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, K=k, NO_INCLUSIVE=_lookback_test(), num_warps=warps,
    )
    return h, ht


def scan1_bwd(
    a: torch.Tensor, h0: torch.Tensor | None, h: torch.Tensor, do: torch.Tensor, dht: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, log_a: bool, reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Launch the backward kernel. Returns ``(da or dlog_a, db, dh0 or None)``."""
    B, T, D = h.shape
    da = torch.empty_like(a)
    db = torch.empty_like(h)
    dh0 = torch.zeros_like(h0, dtype=torch.float32) if h0 is not None else None
    if T == 0:
        if dh0 is not None and dht is not None:
            dh0.copy_(dht)
        return da, db, dh0
    ct, bd, warps, k = _config(h.dtype, D)
    nseq, L, nch, nd, seq_idx, vals, flags = _geometry(h, cu_seqlens, ct, bd)
    _scan1_bwd_kernel[(nseq * nch * nd,)](
        a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, vals, flags, flags[-1:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, K=k, NO_INCLUSIVE=_lookback_test(), num_warps=warps,
    )
    return da, db, dh0
