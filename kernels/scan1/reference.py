"""PyTorch forms of the first-order diagonal scan ``h_t = a_t * h_{t-1} + b_t``.

* :func:`scan1_naive` is the oracle: one Python step per time step.
* :func:`scan1_chunked` is the CPU path: the time axis is cut into ``C ~ sqrt(T)`` chunks; a scan inside every
  chunk runs for all chunks at once (``C`` vectorised steps, zero carry-in), then the chunk carries are chained
  (``T / C`` steps) and added back through the within-chunk cumulative gate. It is exact for any gate (zero and
  negative gates included: no division and no logarithm of ``a``), so it is a drop-in for the oracle.

Both take ``[B, T, D]`` tensors, compute in float32 (float64 stays float64) and return ``(h, h_T)``.
Right-to-left scans (``reverse=True``) run ``h_t = a_t * h_{t+1} + b_t`` and return ``h_0`` as the final state.
Varlen (``cu_seqlens``) is handled by :func:`scan1_varlen`, which loops over the packed sequences.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def scan1_naive(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Recurrent oracle: ``h_t = a_t * h_{t-1} + b_t`` one step at a time.

    Args:
        a: gates ``[B, T, D]`` (linear space).
        b: inputs ``[B, T, D]``.
        h0: initial state ``[B, D]`` or None (zeros).
        reverse: scan right to left.

    Returns:
        ``h`` ``[B, T, D]`` in ``b.dtype`` and the final state ``[B, D]`` in the accumulation dtype.
    """
    acc = _acc_dtype(b)
    B, T, D = b.shape
    h = torch.zeros(B, D, dtype=acc, device=b.device) if h0 is None else h0.to(acc)
    out = []
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        h = a[:, t].to(acc) * h + b[:, t].to(acc)
        out.append(h)
    if reverse:
        out = out[::-1]
    hs = torch.stack(out, 1) if out else b.new_zeros(B, 0, D, dtype=acc)
    return hs.to(b.dtype), h


def scan1_chunked(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    reverse: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked scan, the CPU path (same contract as :func:`scan1_naive`).

    Args:
        a: gates ``[B, T, D]``.
        b: inputs ``[B, T, D]``.
        h0: initial state ``[B, D]`` or None.
        reverse: scan right to left.
        chunk_size: chunk length; default ``ceil(sqrt(T))`` balances the two sequential loops.

    Returns:
        ``(h, h_T)`` as in :func:`scan1_naive`.
    """
    if reverse:
        h, hT = scan1_chunked(a.flip(1), b.flip(1), h0, False, chunk_size)
        return h.flip(1), hT
    acc = _acc_dtype(b)
    B, T, D = b.shape
    if T == 0:
        hT = torch.zeros(B, D, dtype=acc, device=b.device) if h0 is None else h0.to(acc)
        return b.new_zeros(B, 0, D), hT
    C = chunk_size or max(1, math.isqrt(T - 1) + 1)
    n = -(-T // C)
    pad = n * C - T
    a32, b32 = a.to(acc), b.to(acc)
    if pad:  # identity steps at the end: a = 1, b = 0
        a32 = torch.cat([a32, a32.new_ones(B, pad, D)], 1)
        b32 = torch.cat([b32, b32.new_zeros(B, pad, D)], 1)
    a4, b4 = a32.reshape(B, n, C, D), b32.reshape(B, n, C, D)
    # within-chunk scan with zero carry-in, all chunks at once; cumulative gate alongside
    loc, cg = [], []
    h = torch.zeros(B, n, D, dtype=acc, device=b.device)
    g = torch.ones(B, n, D, dtype=acc, device=b.device)
    for i in range(C):
        h = a4[:, :, i] * h + b4[:, :, i]
        g = a4[:, :, i] * g
        loc.append(h)
        cg.append(g)
    loc_t, cg_t = torch.stack(loc, 2), torch.stack(cg, 2)  # [B, n, C, D]
    # chain the chunk carries: carry_j = state entering chunk j
    carry = torch.zeros(B, D, dtype=acc, device=b.device) if h0 is None else h0.to(acc)
    carries = []
    for j in range(n):
        carries.append(carry)
        carry = cg_t[:, j, -1] * carry + loc_t[:, j, -1]
    carry_in = torch.stack(carries, 1)  # [B, n, D]
    hs = (loc_t + cg_t * carry_in[:, :, None]).reshape(B, n * C, D)[:, :T]
    return hs.to(b.dtype), carry


def scan1_loop(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence as one fused ``addcmul`` per step into a preallocated output (same contract as
    :func:`scan1_naive`). No autograd (it writes through ``out=``): the op's CPU path runs it below the custom
    op. Fastest on CPU when every step is wide (``B * D`` in the thousands: Mamba's ``d_inner * N`` channels),
    where it makes one pass over ``a``, ``b`` and ``h`` against the chunked form's ~10."""
    acc = _acc_dtype(b)
    B, T, D = b.shape
    a32, b32 = a.to(acc), b.to(acc)
    out = torch.empty(B, T, D, dtype=acc, device=b.device)
    h = torch.zeros(B, D, dtype=acc, device=b.device) if h0 is None else h0.to(acc)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        torch.addcmul(b32[:, t], a32[:, t], h, out=out[:, t])
        h = out[:, t]
    return out.to(b.dtype), h.clone()


# Below this many channels per step (B * D) the per-step overhead of the loop (~15 us) loses to the chunked
# form's extra passes (measured on the 2-core machine: loop wins at B*D = 16k-33k by 3.7-9x, loses at B*D <= 1k
# by 1.7-14x; benchmarks/kernels_cpu.py).
LOOP_MIN_WIDTH = 2048


def scan1_cpu(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The op's PyTorch path without autograd: :func:`scan1_loop` for wide steps on CPU, else
    :func:`scan1_chunked` (also on CUDA, where a launch per step would dominate)."""
    if b.device.type == "cpu" and b.shape[0] * b.shape[2] >= LOOP_MIN_WIDTH:
        return scan1_loop(a, b, h0, reverse)
    return scan1_chunked(a, b, h0, reverse)


def scan1_varlen(
    form: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None,
    offsets: list[int],
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``form`` on each packed sequence of ``[1, T, D]`` inputs (FlashAttention ``cu_seqlens`` offsets).

    Returns:
        ``h`` ``[1, T, D]`` and the final states ``[N, D]``.
    """
    hs, finals = [], []
    for i, (s, e) in enumerate(zip(offsets[:-1], offsets[1:])):
        h, hT = form(a[:, s:e], b[:, s:e], None if h0 is None else h0[i : i + 1], reverse)
        hs.append(h)
        finals.append(hT)
    return torch.cat(hs, 1), torch.cat(finals, 0)


def scan1_chunked_bwd(
    a: torch.Tensor,
    h0: torch.Tensor | None,
    h: torch.Tensor,
    dh: torch.Tensor,
    dht: torch.Tensor | None,
    offsets: list[int] | None = None,
    reverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Analytic backward of the scan (the CPU path's gradient), one reverse chunked scan plus elementwise ops.

    In scan order, with ``a'`` the gate of the next step (zero where a sequence ends)::

        g_p = dh_p + a'_{p+1} g_{p+1}  (+ dh_T at a sequence's last step)
        db_p = g_p,  da_p = g_p h_{p-1}  (h0 at a sequence start),  dh0 = a_start g_start

    the same equations as the Triton backward (``triton_scan.py``). Packed sequences (``offsets``, FlashAttention
    ``cu_seqlens`` as a list, ``B == 1``) need no loop: the zero gate at every sequence end stops the reverse scan.

    Args:
        a: gates ``[B, T, D]`` in linear space.
        h0: initial states ``[N, D]`` or None.
        h: the forward output ``[B, T, D]``.
        dh: gradient of ``h``; dht: gradient of the final states ``[N, D]`` or None.
        offsets: sequence offsets ``[0, ..., T]`` of packed sequences, or None (``N = B``).
        reverse: the forward scanned right to left.

    Returns:
        ``(da, db, dh0 or None)`` in the accumulation dtype (float32; float64 stays float64).
    """
    acc = _acc_dtype(h)
    B, T, D = h.shape
    if reverse:  # scan order = time flipped; packed sequences come in the opposite order
        offs = None if offsets is None else [T - o for o in offsets[::-1]]
        flip_n = (lambda x: x) if offsets is None else (lambda x: None if x is None else x.flip(0))
        da, db, dh0 = scan1_chunked_bwd(a.flip(1), flip_n(h0), h.flip(1), dh.flip(1), flip_n(dht), offs, False)
        return da.flip(1), db.flip(1), flip_n(dh0)
    a32, h32, g_in = a.to(acc), h.to(acc), dh.to(acc)
    if offsets is None:
        starts, ends = [0] * B, [T - 1] * B
        rows = torch.arange(B, device=h.device)
    else:
        starts, ends = offsets[:-1], [o - 1 for o in offsets[1:]]
        rows = torch.zeros(len(starts), dtype=torch.long, device=h.device)
    st = torch.tensor(starts, dtype=torch.long, device=h.device)
    en = torch.tensor(ends, dtype=torch.long, device=h.device)
    a_next = torch.cat([a32[:, 1:], a32.new_zeros(B, 1, D)], 1)
    if offsets is not None:
        a_next[0, en] = 0.0
    if dht is not None:
        g_in = g_in.clone()
        g_in[rows, en] += dht.to(acc)
    g, _ = scan1_cpu(a_next, g_in, None, reverse=True)
    h_prev = torch.cat([h32.new_zeros(B, 1, D), h32[:, :-1]], 1)
    h_prev[rows, st] = h0.to(acc) if h0 is not None else 0.0
    dh0 = a32[rows, st] * g[rows, st] if h0 is not None else None
    return g * h_prev, g, dh0
