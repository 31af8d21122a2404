"""Host side of the scan1 Triton kernels: tile configs, option flags, the look-back workspace and the launches.

The kernels live in :mod:`seqlab.kernels.scan1.triton_scan` (look-back: one program per tile) and
:mod:`seqlab.kernels.scan1.triton_walk` (one program per sequence and channel block, dense float32 with enough
channels; :func:`_walk_config`) and, opt-in, :mod:`seqlab.kernels.scan1.triton_persist` (persistent look-back
programs that prefetch their next tile; :func:`_persist`).
"""
from __future__ import annotations


import torch

from seqlab.kernels._dispatch import cdiv, getenv, interpret_mode, next_pow2
from seqlab.kernels.scan1.triton_persist import _scan1_fwd_persist_kernel
from seqlab.kernels.scan1.triton_scan import _scan1_bwd_kernel, _scan1_fwd_kernel
from seqlab.kernels.scan1.triton_walk import _scan1_walk_bwd_kernel, _scan1_walk_fwd_kernel


def _config(dtype: torch.dtype, D: int, L: int, backward: bool = False) -> tuple[int, int, int]:
    """``(CT, BD, num_warps)``. Forward: 32-step chunks of 128 channels over two warps, two adjacent channels a
    thread (``BC = 64``, ``VEC = 2``: 128-byte rows in bf16, no shuffles in the scan; see :mod:`triton_scan`).
    Backward: 32-step chunks of 32 channels, one warp (``VEC = 1``: Triton then vectorises along the channels and
    splits time over threads, as the old ``[CT, BD]`` tiles did).

    16-bit forward (nineteenth session of 2026-12-05): 64-step chunks of 256 channels over four warps (``VEC = 2``;
    163 registers a thread, no spills, sm_90 offline). H200, B=8 T=8192 D=1024 bf16 log gates, CUDA graphs
    (``bash benchmarks/pending_gpu.sh $OUT tile19``, every row checked in bf16, dense and varlen, both directions):
    32x128x2 0.1262 ms, 64x128x2 0.1185, 64x64x1 0.1219, **64x256x4 0.1159**, accelerated-scan 0.1108; the
    loads/stores-only ablation of 64x128x2 0.1095. 128-step chunks spill (255 registers, 120 bytes; not timed).
    Without cache hints (:func:`_hints`, now the default on these tiles) 64x256x4 took 0.1102 ms, and 0.1106 as the
    default against accelerated-scan's 0.1107 in one run (``pending_gpu.sh $OUT hints19``). H100 (twentieth
    session, ``pending_gpu.sh $OUT h100_20``): 0.1499 ms against 0.1623 for 32x128x2 with hints and 0.1372 for
    accelerated-scan; without the look-back 0.1412, loads and stores alone 0.1394-0.1419 (``h100_20b``, ``h100_20c``).

    H200, B=8 T=8192 D=1024, log gates (``bash benchmarks/pending_gpu.sh $OUT scan1``, eighth session of
    2026-12-03, docs/results.md), forward ms with the three-word workspace of that run, bf16 / float32:

    - 32x128x2 (``VEC = 2``): 0.176 / 0.244 (the default);
    - 32x64x1 (``VEC = 2``): 0.189 / 0.257;
    - 32x32x1 (the old layout): 0.207 / 0.261; 64x32x2 (the old float32 default): float32 0.243;
    - 16-step chunks (16x128x1, 16x64x1): 0.231-0.235 / 0.314-0.315.

    After the change to one workspace word per chunk and channel the default forward took 0.160 / 0.230 ms. For the
    backward, kernel times (``scan1_profile.py``, bf16 / float32 us): 32x32x1 273 / 473, 32x64x2 286 / 465,
    16x64x1 380 / 484, 16x128x2 381 / 505. The eager fwd+bwd rows of the sweeps varied by up to 1.5x run to run
    (host-bound, docs/results.md) and did not decide anything.

    ``SEQLAB_SCAN1_CFG=CT,BD,W`` overrides both directions and ``SEQLAB_SCAN1_BWD_CFG`` the backward alone (tuning
    sweeps)."""
    env = (backward and getenv("SEQLAB_SCAN1_BWD_CFG")) or getenv("SEQLAB_SCAN1_CFG")
    if env:
        ct, bd, w = (int(x) for x in env.split(","))
        if bd % (32 * w):
            raise ValueError(f"SEQLAB_SCAN1_CFG / SEQLAB_SCAN1_BWD_CFG: BD={bd} must be a multiple of 32 * num_warps "
                             f"= {32 * w} (one channel group a thread, see _lanes)")
        return ct, bd, w
    if interpret_mode():
        return 16, 32, 1
    if backward:
        return max(16, min(32, next_pow2(max(L, 1)))), 32, 1
    if dtype.itemsize == 2:  # 64-step chunks of up to 256 channels, two a thread (nineteenth session, H200)
        ct = max(16, min(64, next_pow2(max(L, 1))))
        bd = min(256, max(32, next_pow2(D)))
        return ct, bd, max(1, bd // 64)
    ct = max(16, min(32, next_pow2(max(L, 1))))
    bd = min(128, max(32, next_pow2(D)))
    return ct, bd, 2 if bd == 128 else 1


_SMS: dict = {}


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1
    i = device.index if device.index is not None else torch.cuda.current_device()
    if i not in _SMS:
        _SMS[i] = torch.cuda.get_device_properties(i).multi_processor_count
    return _SMS[i]


def _walk_config(dtype: torch.dtype, B: int, D: int, device: torch.device, varlen: bool,
                 backward: bool = False) -> tuple[int, int, int, int, int, int] | None:
    """``(CT, BC, VEC, num_warps, STAGES, TS)`` of the walking kernels (:mod:`seqlab.kernels.scan1.triton_walk`), or
    ``None`` for the look-back kernels.

    ``SEQLAB_SCAN1_WALK``: ``auto`` (default), ``0`` (never), ``1`` (always, dense input) or ``bwd`` (the backward
    only, dense input; the forward keeps the look-back kernel). ``auto`` walks float32
    dense input when there are at least ``3/2`` programs an SM (``B * D / BD``; fewer leave HBM idle). Defaults:
    forward 64-step chunks, backward 32-step chunks, 32 channels a program, one warp, loads pipelined over 3 / 4
    stages, each chunk scanned in ``TS = 4`` segments of consecutive steps (``triton_walk._seg_carries``: Triton lays
    a ``VEC = 1`` tile out as 4 channels a thread and the segments over 4 threads, sm_90 TTGIR; 112 shuffles a
    64-step forward chunk against 1040 with one segment). H200, B=8 T=8192 D=1024 float32 (256 programs for 132
    SMs), CUDA graphs, twelfth session (docs/results.md): with one segment the forward took 0.200 ms walking against
    0.212 ms with look-back (accelerated-scan 0.192) and forward+backward 0.551 ms against 0.693 (accelerated-scan
    0.551; ``pending_gpu.sh $OUT walk12``, ``final12``); four segments took the forward kernel 0.1998 -> 0.1973 ms and
    the backward 0.3570 -> 0.3534 ms (``benchmarks/walk_split_ab.py``). 16-bit storage (fifteenth session, ``pending_gpu.sh
    fifteen``, H200 bf16 B8 T8192 D1024, kernels from CUDA graphs): tiles of 4 channels a thread in 16-step segments
    took 0.25-0.39 ms (a walk's trip is latency-bound: the in-thread chain is the segment), 8 channels a thread in
    eight 8-step segments joined by a scan (``SEGSCAN = 1``, :func:`_segscan`) forward 0.132 ms (64,32,1,1,4,8)
    against look-back 0.125 and backward 0.2185 (64,32,1,1,3,8) against 0.258. So ``auto`` walks the 16-bit
    backward only: forward+backward 0.347 ms against 0.385 (accelerated-scan 0.412). Under
    ``TRITON_INTERPRET=1`` ``auto`` keeps the look-back kernels too (their tests); tests of this form set
    ``SEQLAB_SCAN1_WALK=1``. ``SEQLAB_SCAN1_WALK_CFG`` / ``SEQLAB_SCAN1_WALK_BWD_CFG`` = ``CT,BC,VEC,W,S[,TS]`` override
    the tiles (sweeps)."""
    v = getenv("SEQLAB_SCAN1_WALK", "auto")
    if v not in ("auto", "0", "1", "bwd"):
        raise ValueError(f"SEQLAB_SCAN1_WALK must be auto, 0, 1 or bwd, got {v!r}")
    if v == "0" or varlen or (v == "bwd" and not backward):
        return None
    env = getenv("SEQLAB_SCAN1_WALK_BWD_CFG" if backward else "SEQLAB_SCAN1_WALK_CFG")
    if env:
        try:
            vals = [int(x) for x in env.split(",")]
        except ValueError:
            vals = []
        if len(vals) not in (5, 6):
            raise ValueError(f"SEQLAB_SCAN1_WALK_CFG / _BWD_CFG must be CT,BC,VEC,W,S[,TS] integers, got {env!r}")
        ct, bc, vec, w, st, ts = vals + [1] * (6 - len(vals))
        if min(vals) < 1 or any(x & (x - 1) for x in (ct, bc, vec, w, ts)) or ts > ct:
            raise ValueError(f"SEQLAB_SCAN1_WALK_CFG / _BWD_CFG: CT, BC, VEC, W, TS must be powers of two, TS <= CT "
                             f"and S >= 1, got {env!r}")
    elif interpret_mode():
        ct, bc, vec, w, st, ts = 16, 16, 1, 1, 2, 4
    else:
        if dtype.itemsize == 4:
            ct, bc, vec, w, st = (32, 32, 1, 1, 4) if backward else (64, 32, 1, 1, 3)
        else:  # 16-bit: 8 channels a thread, eight 8-step segments (see the docstring)
            ct, bc, vec, w, st = (64, 32, 1, 1, 3) if backward else (64, 32, 1, 1, 4)
        ts = walk_segments(dtype, ct, bc, vec, w)
    if v == "auto" and (interpret_mode() or (dtype.itemsize != 4 and not backward)
                        or 2 * B * cdiv(D, bc * vec) < 3 * _sm_count(device)):
        return None
    return ct, bc, vec, w, st, ts


def walk_segments(dtype: torch.dtype, ct: int, bc: int, vec: int, warps: int) -> int:
    """``TS`` of a walking ``[BC, TS, TI, VEC]`` tile: the threads Triton leaves for time once it has laid the
    channels out (sm_90 TTGIR, Triton 3.6). A thread holds up to 16 bytes of adjacent channels: ``VEC`` of them when
    ``VEC > 1`` (contiguity stops there), else up to ``BC``; the other threads of the warps go to the segments, each
    then scanned in-thread. float32 ``64,32,1,1``: 4 channels a thread, 8 threads over channels, ``TS = 4``; bf16
    ``64,32,1,1``: 8 channels, ``TS = 8``; bf16 ``64,8,4,1``: 4 channels, ``TS = 4``."""
    per = min(max(1, 16 // dtype.itemsize), vec if vec > 1 else bc)
    return min(ct, max(1, 32 * warps * per // (bc * vec)))


def _segscan(itemsize: int = 4) -> int:
    """``SEQLAB_SCAN1_WALK_SEGSCAN``: how the walking kernels join a chunk's segments (``triton_walk._seg_carries``):
    ``0`` walks the segment aggregates; ``1`` scans (inclusive, exclusive) map pairs across them. Default: ``0`` for
    float32 storage (4 segments; H200 twelfth/fifteenth sessions: 64,32,1,1,3,4 forward 0.1960 ms with ``0`` against
    0.1983 with ``1``), ``1`` for 16-bit storage (8 segments; bf16 64,32,1,1,3,8 at B4 T4096 D2048: forward 0.108 ->
    0.070 ms, ``pending_gpu.sh walk13``)."""
    v = getenv("SEQLAB_SCAN1_WALK_SEGSCAN", "1" if itemsize < 4 else "0")
    if v not in ("0", "1"):
        raise ValueError(f"SEQLAB_SCAN1_WALK_SEGSCAN must be 0 or 1, got {v!r}")
    return int(v)


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
    v = getenv(f"SEQLAB_SCAN1_{name}")
    return default if v is None else v == "1"


def _persist(name: str = "SEQLAB_SCAN1_PERSIST") -> int:
    """``SEQLAB_SCAN1_PERSIST=K``: the look-back forward as ``K`` persistent programs an SM that prefetch their next
    tile (:mod:`seqlab.kernels.scan1.triton_persist`; opt-in, untimed). ``0`` (default): one program a tile.
    ``name`` reads another variable with the same meaning (``SEQLAB_PREFIX_ATTN_SCAN_PERSIST``)."""
    v = getenv(name, "0")
    if not v.isdigit() or int(v) > 64:
        raise ValueError(f"{name} must be an integer from 0 to 64 (programs an SM), got {v!r}")
    return int(v)


def _lookback_window(name: str = "SEQLAB_SCAN1_LOOKBACK_WINDOW") -> int:
    """``SEQLAB_SCAN1_LOOKBACK_WINDOW=W``: the forward's look-back loads the words of ``W`` chunks a round trip
    (``triton_scan._carry_in``; a power of two up to 32; opt-in, untimed). ``1`` (default): one word a round trip.
    ``name`` reads another variable with the same meaning (``SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW``, the prefix
    attention value scan)."""
    v = getenv(name, "1")
    if not v.isdigit() or int(v) not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"{name} must be 1, 2, 4, 8, 16 or 32 (chunks a look-back round trip), got {v!r}")
    return int(v)


def _packable(flat: bool, vec: int, *xs: torch.Tensor) -> bool:
    """Whether a persistent forward carries its next tiles as int32 words of channel pairs (``PACK``): ``FLAT`` tiles
    of two 16-bit channels a thread, every input 4-byte aligned (the words are loaded as int32 whatever Triton
    knows of the pointers; a tensor starting at an odd element would fault)."""
    return (flat and vec == 2 and all(x.element_size() == 2 and x.dtype == xs[0].dtype for x in xs)
            and all(x.data_ptr() % 4 == 0 for x in xs))


def _lanes(bd: int, warps: int) -> tuple[int, int]:
    """``(BC, VEC)`` of a ``BD``-channel tile over ``warps`` warps: ``BC = 32 * warps`` channel groups, one a thread,
    of ``VEC = BD / BC`` adjacent channels (vector loads). Every channel vector of the look-back is then held by
    one thread exactly (``triton_scan._carry_in``), so ``BD`` is a multiple of ``32 * warps`` (narrow ``D`` leaves
    channels of the tile masked instead)."""
    if bd % (32 * warps):
        raise ValueError(f"scan1 tile: BD={bd} is not a multiple of 32 * num_warps = {32 * warps}")
    return 32 * warps, bd // (32 * warps)


def _phases() -> tuple[bool, bool]:
    """``(TWO, OPAQUE)`` of the forward kernel (see ``triton_scan._fwd_tile``), both on by default: the two-phase
    forward (only the raw tile is held across the look-back) and store addresses and the second conversion
    recomputed after the look-back through inline asm (never in the interpreter, which has no asm).
    ``SEQLAB_SCAN1_TWO=0`` / ``SEQLAB_SCAN1_OPAQUE=0`` turn them off.

    H200, B=8 T=8192 D=1024, log gates, replayed from CUDA graphs (``bash benchmarks/pending_gpu.sh $OUT two2``,
    ninth session, docs/results.md), forward / forward+backward ms: bf16 0.155 / 0.431 without either, 0.154 /
    0.429 with ``OPAQUE``, 0.138 / 0.413 with both (accelerated-scan 0.110 / 0.412); float32 0.225 / 0.702,
    0.211 / 0.690, 0.211 / 0.688 (accelerated-scan 0.193 / 0.555). sm_90 registers a thread (32x128x2 tile):
    bf16 197, 196, 96; float32 203, 163, 163."""
    two = getenv("SEQLAB_SCAN1_TWO", "1") == "1"
    opaque = getenv("SEQLAB_SCAN1_OPAQUE", "1") == "1" and not interpret_mode()
    return two, opaque


def _hints(dtype: torch.dtype, ct: int = 32) -> int:
    """Cache hints of the forward tiles, a bit mask: 1, inputs loaded ``evict_first``; 2, outputs stored streaming
    (``.cs``); so data used once leaves L2 before the look-back workspace words that later chunks poll.
    ``SEQLAB_SCAN1_HINTS``: ``auto`` (default: 3 for 16-bit storage in chunks of fewer than 64 steps, else 0) or
    ``0``-``3``. ``ct``: the forward's chunk length (prefix_attention's value scan passes none: 3 for 16-bit).

    H200, CUDA-graph forward (``bash benchmarks/pending_gpu.sh $OUT eleven``, docs/results.md), both hints: scan1 B8
    T8192 D1024 bf16 0.139 -> 0.131 ms, float32 0.212 -> 0.232 ms; prefix_attention's value scan (B4 T4096 H16 V128
    bf16) 0.080 -> 0.072 ms for the whole scan forward. On scan1's 64x256x4 bf16 tiles (nineteenth session, H200,
    CUDA graphs) the hints cost time instead: 0.116-0.117 ms with both (four runs), 0.1102 with none (two runs),
    0.111 with the store hint alone, 0.119 with the load hint alone."""
    v = getenv("SEQLAB_SCAN1_HINTS", "auto")
    if v not in ("auto", "0", "1", "2", "3"):
        raise ValueError(f"SEQLAB_SCAN1_HINTS must be auto or 0-3 (1 loads, 2 stores), got {v!r}")
    return (3 if dtype.itemsize == 2 and ct < 64 else 0) if v == "auto" else int(v)


def _flat(varlen: bool, T: int, D: int, ct: int, bd: int) -> bool:
    """Whether the forward takes ``FLAT`` tiles (``triton_scan._flat_ptrs``: no masks, compile-time row offsets,
    the row stride ``D`` compiled in): dense input whose tiles are all full (``T % CT == 0``, ``D % BD == 0``).
    ``SEQLAB_SCAN1_FLAT=0`` turns it off (benchmarks, tests)."""
    v = getenv("SEQLAB_SCAN1_FLAT", "1")
    if v not in ("0", "1"):
        raise ValueError(f"SEQLAB_SCAN1_FLAT must be 0 or 1, got {v!r}")
    return v == "1" and not varlen and T % ct == 0 and D % bd == 0


def _regcap(name: str, default: int = 0) -> dict:
    """``{"maxnreg": n}``: a register cap a thread for one kernel from environment variable ``name``
    (``SEQLAB_SCAN1_MAXNREG``, ``SEQLAB_SCAN1_BWD_MAXNREG``, ``SEQLAB_PREFIX_ATTN_SCAN_MAXNREG``,
    ``SEQLAB_PREFIX_ATTN_SCAN_BWD_MAXNREG``; a multiple of 8 from 32 to 255, or 0 for none), else ``default``;
    ``{}`` without a cap (ptxas decides).

    The backward tiles take 128 for 16-bit storage (:func:`_bwd_regcap`); every other cap measured on the H200
    was slower (``bash benchmarks/pending_gpu.sh $OUT fourteen``, docs/results.md)."""
    v = getenv(name)
    if v:
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"{name} must be an integer register count, got {v!r}") from None
        if n != 0 and (not 32 <= n <= 255 or n % 8):
            raise ValueError(f"{name}={n}: a register cap is 0 (none) or a multiple of 8 from 32 to 255")
    else:
        n = default
    return {"maxnreg": n} if n else {}


def _bwd_regcap(name: str, dtype: torch.dtype) -> dict:
    """The backward scan tiles' register cap: 128 for 16-bit storage (sm_90a, bf16 32x32x1 tile: 163 registers a
    thread uncapped for scan1, 185 for prefix attention, one warp a program; 128 spills ~84 bytes and fits more
    programs an SM). H200, CUDA graphs: scan1 bf16 forward+backward 0.411 -> 0.398 ms (accelerated-scan 0.414);
    float32 0.688 -> 0.799 ms, so none there."""
    return _regcap(name, 128 if dtype.itemsize == 2 else 0)


def _i64(ws: torch.Tensor, x: torch.Tensor) -> bool:
    """64-bit index arithmetic in the kernels when an int32 offset could overflow."""
    return max(ws.numel(), x.numel()) >= 2**31 - 1


def _lookback_test() -> bool:
    """``SEQLAB_SCAN1_LOOKBACK_TEST=1``: chunks publish only aggregates (and inclusive states where a sequence
    starts), so every look-back composes aggregates back to the sequence start. Tests use it to exercise the
    path that concurrent GPU programs take but the sequential interpreter never would."""
    return getenv("SEQLAB_SCAN1_LOOKBACK_TEST") == "1"


def _workspace(numel: int, device: torch.device, counter: bool, fill: bool = True) -> torch.Tensor:
    """The look-back workspace: ``numel`` int64 words filled with all ones (unwritten, see ``triton_scan``), the last
    two the ticket counter, zeroed when a launch takes tickets. A fresh buffer per launch (16.8 MB at B=8 T=8192
    D=1024 with 32-step chunks), so a CUDA graph replay gets it afresh too. ``fill=False``: left unwritten, counter
    included, for a caller whose own earlier launch fills it (prefix attention's inline score pass)."""
    if not fill:
        return torch.empty((numel,), device=device, dtype=torch.int64)
    ws = torch.full((numel,), -1, device=device, dtype=torch.int64)
    if counter:
        ws[-2:].zero_()
    return ws


def _geometry(b: torch.Tensor, cu_seqlens: torch.Tensor | None, ct: int, bd: int, counter: bool, fill: bool = True):
    B, T, D = b.shape
    if cu_seqlens is None:
        nseq, L, seq_idx = B, T, None
    else:
        nseq, L = 1, T
        pos = torch.arange(T, device=b.device, dtype=cu_seqlens.dtype)
        seq_idx = torch.searchsorted(cu_seqlens[1:], pos, right=True).to(torch.int32)
    nch = cdiv(max(L, 1), ct)
    nd = cdiv(D, bd)
    # workspace: one row of D words per chunk, then the ticket counter
    ws = _workspace(nseq * nch * D + 2, b.device, counter, fill)
    return nseq, L, nch, nd, seq_idx, ws


def _ablate() -> int:
    """``SEQLAB_SCAN1_ABLATE`` (benchmarks only; the results are wrong): 0 (default) the real forward; 1 the same
    tiles scanned with carry-in zero (no look-back, no workspace traffic); 2 the same tiles loaded, multiplied and
    stored (no scan). Timing them beside the real kernel splits its time between the look-back, the in-tile scan
    and the memory traffic of one-tile programs (``benchmarks/pending_gpu.sh``)."""
    v = int(getenv("SEQLAB_SCAN1_ABLATE", "0"))
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
    walk = _walk_config(b.dtype, B, D, b.device, cu_seqlens is not None) if _ablate() == 0 else None
    if walk is not None:
        ct, bc, vec, warps, stages, ts = walk
        nd = cdiv(D, bc * vec)
        _scan1_walk_fwd_kernel[(B * nd,)](
            a, b, h0, h, ht, T, D, nd, LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state,
            REVERSE=reverse, CT=ct, BC=bc, VEC=vec, STAGES=stages, I64=h.numel() >= 2**31 - 1,
            MASK_D=D % (bc * vec) != 0, TS=ts, SEGSCAN=_segscan(b.element_size()), num_warps=warps,
        )
        return h, ht
    ct, bd, warps = _config(b.dtype, D, T)
    bc, vec = _lanes(bd, warps)
    persist = _persist() if _ablate() == 0 else 0
    ticket, early = _flag("TICKET", False) or persist > 0, _flag("EARLY_POLL", True)
    nseq, L, nch, nd, seq_idx, ws = _geometry(b, cu_seqlens, ct, bd, counter=ticket)
    two, opaque = _phases()
    flat = _flat(cu_seqlens is not None, T, D, ct, bd) and _ablate() == 0
    if persist:
        nt = nseq * nch * nd
        _scan1_fwd_persist_kernel[(min(nt, persist * _sm_count(b.device)),)](
            a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd, nt,
            LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
            REVERSE=reverse, CT=ct, BC=bc, VEC=vec, NO_INCLUSIVE=_lookback_test(), EARLY=early, I64=_i64(ws, h),
            TWO=two, OPAQUE=opaque, HINTS=_hints(b.dtype, ct), FLAT=flat, DK=D if flat else 0,
            PACK=_packable(flat, vec, a, b), num_warps=warps,
            **_regcap("SEQLAB_SCAN1_MAXNREG"),
        )
        return h, ht
    _scan1_fwd_kernel[(nseq * nch * nd,)](
        a, b, h0, h, ht, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BC=bc, VEC=vec, NO_INCLUSIVE=_lookback_test(), TICKET=ticket,
        EARLY=early, I64=_i64(ws, h), ABLATE=_ablate(), TWO=two, OPAQUE=opaque, HINTS=_hints(b.dtype, ct),
        FLAT=flat, DK=D if flat else 0, LBW=_lookback_window(), num_warps=warps, **_regcap("SEQLAB_SCAN1_MAXNREG"),
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
    walk = _walk_config(h.dtype, B, D, h.device, cu_seqlens is not None, backward=True)
    if walk is not None:
        ct, bc, vec, warps, stages, ts = walk
        nd = cdiv(D, bc * vec)
        _scan1_walk_bwd_kernel[(B * nd,)](
            a, h0, h, do, dht, da, db, dh0, T, D, nd, LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None,
            REVERSE=reverse, CT=ct, BC=bc, VEC=vec, STAGES=stages, I64=h.numel() >= 2**31 - 1,
            MASK_D=D % (bc * vec) != 0, TS=ts, SEGSCAN=_segscan(h.element_size()), num_warps=warps,
        )
        return da, db, dh0
    ct, bd, warps = _config(h.dtype, D, T, backward=True)
    bc, vec = _lanes(bd, warps)
    ticket, early = _flag("TICKET", False), _flag("EARLY_POLL", True)
    nseq, L, nch, nd, seq_idx, ws = _geometry(h, cu_seqlens, ct, bd, counter=ticket)
    _scan1_bwd_kernel[(nseq * nch * nd,)](
        a, h0, h, do, dht, da, db, dh0, seq_idx, cu_seqlens, ws, ws[-2:], L, D, nseq, nch, nd,
        LOG_A=log_a, HAS_H0=h0 is not None, HAS_DHT=dht is not None, IS_VARLEN=cu_seqlens is not None,
        REVERSE=reverse, CT=ct, BC=bc, VEC=vec, NO_INCLUSIVE=_lookback_test(), TICKET=ticket,
        EARLY=early, I64=_i64(ws, h), num_warps=warps, **_bwd_regcap("SEQLAB_SCAN1_BWD_MAXNREG", h.dtype),
    )
    return da, db, dh0
