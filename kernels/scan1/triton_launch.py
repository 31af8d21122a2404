"""Host side of the scan1 Triton kernels: tile configs, option flags, the look-back workspace and the launches.

The kernels live in :mod:`seqlab.kernels.scan1.triton_scan` (one program per tile) and
:mod:`seqlab.kernels.scan1.triton_persist` (persistent programs).
"""
from __future__ import annotations

import os
import threading

import torch
import triton

from seqlab.kernels._dispatch import interpret_mode
from seqlab.kernels.scan1.triton_scan import _scan1_bwd_kernel, _scan1_fwd_kernel


def _config(dtype: torch.dtype, D: int, L: int, backward: bool = False) -> tuple[int, int, int]:
    """``(CT, BD, num_warps)``: 32-step chunks of 32 channels with one warp (each thread holds one channel's 32
    steps, so the in-chunk scan needs no shuffles or barriers), except the float32 forward: 64-step chunks over two
    warps (half the look-back hops; float32 loads fill the warp's registers at half the steps).

    H200, B=8 T=8192 D=1024, program-id order with the early poll (``benchmarks/scan1_sweep.py``, sixth session of
    2026-12-03, docs/results.md): bf16 forward 0.208 ms at 32x32x1 against 0.227 (64x32x2), 0.265 (128x32x4) and
    0.352 ms (256x32x8); float32 forward 0.237 ms at 64x32x2 against 0.271 ms at 32x32x1, but its backward was
    slower at 64x32x2 (fwd+bwd 1.059 against 0.775 ms), so the backward keeps 32x32x1. ``SEQLAB_SCAN1_CFG=CT,BD,W``
    overrides both directions (tuning sweeps)."""
    env = os.environ.get("SEQLAB_SCAN1_CFG")
    if env:
        ct, bd, w = (int(x) for x in env.split(","))
        return ct, bd, w
    if interpret_mode():
        return 16, 32, 1
    bd = min(32, max(16, triton.next_power_of_2(D)))
    if dtype == torch.float32 and not backward and L >= 64:
        return 64, bd, 2
    ct = max(16, min(32, triton.next_power_of_2(max(L, 1))))
    return ct, bd, 1


def _flag(name: str, default: bool) -> bool:
    """``SEQLAB_SCAN1_TICKET`` (default 0: tiles in program-id order; 1: from an atomic ticket counter) and
    ``SEQLAB_SCAN1_EARLY_POLL`` (default 1: the preceding chunk's inclusive state is polled while the tile loads,
    and the backward's state loads are issued before its scan; 0: polled after the scan).

    Program-id order relies, as CUB's single-pass ``DeviceScan`` does, on thread blocks being dispatched in
    increasing index order, so that a chunk only waits on chunks whose programs already run; the ticket takes one
    more round trip to L2 per program but needs no such assumption. On an H200 (B=8 T=8192 D=1024, two runs each,
    docs/results.md) the defaults gave a bf16 forward of 0.208 ms against 0.255 ms with the ticket and a late poll,
    float32 0.271 against 0.309 ms; forward+backward bf16 0.911 / 0.808 against 0.938 / 0.764 ms (noisy), float32
    0.801 / 0.775 against 1.143 / 0.800 ms."""
    v = os.environ.get(f"SEQLAB_SCAN1_{name}")
    return default if v is None else v == "1"


def _reload(bd: int, warps: int) -> bool:
    """Whether the look-back re-loads workspace words after its readiness test (see :func:`_look_back`): when a
    ``[BD]`` vector can be replicated over threads (``BD < 32 * num_warps``), or when ``SEQLAB_SCAN1_RELOAD=1``
    asks for it (GPU sweeps; ``0`` cannot turn it off where it is needed)."""
    return bd < 32 * warps or os.environ.get("SEQLAB_SCAN1_RELOAD") == "1"


def _i64(ws: torch.Tensor, x: torch.Tensor) -> bool:
    """64-bit index arithmetic in the kernels when an int32 offset could overflow."""
    return max(ws.numel(), x.numel()) >= 2**31 - 1


def _persist() -> int:
    """``SEQLAB_SCAN1_PERSIST=P``: persistent programs, ``P`` per SM, each looping over tiles with the next tile's
    loads in flight (:mod:`seqlab.kernels.scan1.triton_persist`); 0 (default): one program per tile."""
    return int(os.environ.get("SEQLAB_SCAN1_PERSIST", "0") or 0)


def _num_sms(device: torch.device) -> int:
    if device.type != "cuda" or interpret_mode():
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def _lookback_test() -> bool:
    """``SEQLAB_SCAN1_LOOKBACK_TEST=1``: chunks publish only aggregates (and inclusive states where a sequence
    starts), so every look-back composes aggregates back to the sequence start. Tests use it to exercise the
    path that concurrent GPU programs take but the sequential interpreter never would."""
    return os.environ.get("SEQLAB_SCAN1_LOOKBACK_TEST") == "1"


_WS: dict = {}
_WS_LOCK = threading.Lock()


def _workspace(numel: int, device: torch.device, counter: bool) -> tuple[torch.Tensor, int]:
    """The look-back workspace (``numel`` int64 words, the last two the ticket counter) and this launch's ready tag.

    Default: a fresh zeroed buffer and tag 1 (a memset of ~50 MB per call at B=8 T=8192 D=1024). With
    ``SEQLAB_SCAN1_EPOCH=1`` one buffer per (device, stream) is kept and every launch takes the next tag, so stale
    words of earlier launches (smaller tags) read as "not published" and nothing is zeroed but the counter (only
    when a launch uses it). Launches on one stream run in order, so tags never overlap in time. A stream being
    captured into a CUDA graph always gets a fresh zeroed buffer and tag 1, since a replay reuses its arguments.
    """
    if os.environ.get("SEQLAB_SCAN1_EPOCH") != "1" or (device.type == "cuda"
                                                         and torch.cuda.is_current_stream_capturing()):
        return torch.zeros(numel, device=device, dtype=torch.int64), 1
    stream = torch.cuda.current_stream(device).stream_id if device.type == "cuda" else 0
    key = (device.type, device.index, stream)
    with _WS_LOCK:
        buf, tag = _WS.get(key, (None, 0))
        if buf is None or buf.numel() < numel or tag >= 2**31 - 2:
            buf, tag = torch.zeros(max(numel, 1 << 16), device=device, dtype=torch.int64), 0
        tag += 1
        _WS[key] = (buf, tag)
    ws = buf[:numel]
    if counter:
        ws[-2:].zero_()
    return ws, tag


def _geometry(b: torch.Tensor, cu_seqlens: torch.Tensor | None, ct: int, bd: int, counter: bool):
    B, T, D = b.shape
    if cu_seqlens is None:
        nseq, L, seq_idx = B, T, None
    else:
        nseq, L = 1, T
        pos = torch.arange(T, device=b.device, dtype=cu_seqlens.dtype)
        seq_idx = torch.searchsorted(cu_seqlens[1:], pos, right=True).to(torch.int32)
    nch = triton.cdiv(max(L, 1), ct)
    nd = triton.cdiv(D, bd)
    # workspace: 3 rows of D packed words per chunk, then the ticket counter
    ws, tag = _workspace(nseq * nch * 3 * D + 2, b.device, counter)
    return nseq, L, nch, nd, seq_idx, ws, tag


def _lean(early: bool, reload: bool) -> bool:
    """``SEQLAB_SCAN1_LEAN=1``: a chunk whose early poll found its carry-in publishes only its inclusive state, no
    aggregate (two fewer 8-byte stores per channel; successors that miss it wait for the inclusive state, which
    depends on nothing else). Needs the early poll; off under ``SEQLAB_SCAN1_LOOKBACK_TEST`` (which withholds
    inclusive states, so a lean chunk would publish nothing). Off for tiles whose look-back reloads its words
    (``RELOAD``, fewer channels than threads): on an H200 the float32 default tile (64 x 32, 2 warps) gave wrong
    states with it (h rel-RMS 0.15, seventh session of 2026-12-03, docs/results.md); not diagnosed, and the option
    was no faster where it was correct."""
    return os.environ.get("SEQLAB_SCAN1_LEAN") == "1" and early and not reload and not _lookback_test()


def _ablate() -> int:
    """``SEQLAB_SCAN1_ABLATE`` (benchmarks only; the results are wrong): 0 (default) the real forward; 1 the same
    tiles scanned with carry-in zero (no look-back, no workspace traffic); 2 the same tiles loaded, multiplied and
    stored (no scan). Timing them beside the real kernel splits its time between the look-back, the in-tile scan
    and the memory traffic of one-tile programs (``benchmarks/pending_gpu.sh``)."""
    v = int(os.environ.get("SEQLAB_SCAN1_ABLATE", "0"))
    if v not in (0, 1, 2):
        raise ValueError(f"SEQLAB_SCAN1_ABLATE must be 0, 1 or 2, got {v}")
    return v


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
    ct, bd, warps = _config(b.dtype, D, T)
    persist = _persist()
    ticket, early = _flag("TICKET", False), _flag("EARLY_POLL", True)
    nseq, L, nch, nd, seq_idx, ws, tag = _geometry(b, cu_seqlens, ct, bd, counter=bool(persist) or ticket)
    if persist:
        from seqlab.kernels.scan1.triton_persist import _scan1_fwd_persist_kernel
        nt = nseq * nch * nd
        _scan1_fwd_persist_kernel[(min(nt, _num_sms(b.device) * persist),)](
            a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, nt, tag,
            LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
            REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), RELOAD=_reload(bd, warps),
            I64=_i64(ws, h), num_warps=warps,
        )
        return h, ht
    _scan1_fwd_kernel[(nseq * nch * nd,)](
        a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, tag,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), TICKET=ticket,
        EARLY=early, RELOAD=_reload(bd, warps), I64=_i64(ws, h), LEAN=_lean(early, _reload(bd, warps)),
        ABLATE=_ablate(), num_warps=warps,
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
    ct, bd, warps = _config(h.dtype, D, T, backward=True)
    persist = _persist()
    ticket, early = _flag("TICKET", False), _flag("EARLY_POLL", True)
    nseq, L, nch, nd, seq_idx, ws, tag = _geometry(h, cu_seqlens, ct, bd, counter=bool(persist) or ticket)
    if persist:
        from seqlab.kernels.scan1.triton_persist import _scan1_bwd_persist_kernel
        nt = nseq * nch * nd
        _scan1_bwd_persist_kernel[(min(nt, _num_sms(h.device) * persist),)](
            a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, nt, tag,
            LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
            REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), RELOAD=_reload(bd, warps),
            I64=_i64(ws, h), num_warps=warps,
        )
        return da, db, dh0
    _scan1_bwd_kernel[(nseq * nch * nd,)](
        a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, tag,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BD=bd, NO_INCLUSIVE=_lookback_test(), TICKET=ticket,
        EARLY=early, RELOAD=_reload(bd, warps), I64=_i64(ws, h), LEAN=_lean(early, _reload(bd, warps)), num_warps=warps,
    )
    return da, db, dh0
