"""Offline sm_90 builds of the look-back forward kernels (no GPU needed): registers, spills and SASS instruction
counts a thread for scan1's forward (one program a tile, or persistent, ``SEQLAB_SCAN1_PERSIST``) at issue 3's
shape (B8 T8192 D1024) and prefix_attention's value scan (one program a tile or persistent, chunked or inline score
pass) at issue 4's (B4 T4096 H16 V128), bf16, FLAT tiles, specialised as a launch at those shapes would be
(16-byte aligned pointers; integer arguments divisible by 16 marked so).

    python3 benchmarks/lookback_compile_counts.py                 # every row
    python3 benchmarks/lookback_compile_counts.py --tiles 32,128,2 64,128,2 --maxnreg 168
    python3 benchmarks/lookback_compile_counts.py --tiles 32,128,2 16,256,2 32,256,2 --no-persist   # VEC 2 and 4
    python3 benchmarks/lookback_compile_counts.py --tiles 32,128,2 --no-persist --lbw 4   # look-back windows
    python3 benchmarks/lookback_compile_counts.py --scan1-only --no-persist --dtype fp32 --hints 0 --tiles 32,128,2
                                                                  # scan1 alone, float32 storage, no cache hints

Each row: kernel, tile ``CT,BD,W`` (``VEC = BD / (32 W)`` channels a thread), ``ptxas -v`` registers and spill bytes, instructions a thread (``nvdisasm``), and
the barriers, shared loads and stores among them (layout conversions through shared memory).
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan1_walk_compile_counts import _build  # noqa: E402

SCAN1 = dict(B=8, T=8192, D=1024)
PA = dict(B=4, T=4096, H=16, V=128)


def _sass_ops(cubin: bytes) -> collections.Counter:
    """Opcode counts of a cubin's SASS (``nvdisasm`` from Triton's CUDA tools)."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(90)
    nvd = os.path.join(os.path.dirname(getattr(ptxas, "path", ptxas)), "nvdisasm")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        sass = subprocess.run([nvd, "-c", f.name], capture_output=True, text=True, check=True).stdout
    ops: collections.Counter = collections.Counter()
    for ln in sass.splitlines():
        ln = ln.strip()
        if ln.startswith("/*") and "*/" in ln:
            body = ln.split("*/", 1)[1].strip()
            if body:
                w = body.split()
                op = w[1] if w[0].startswith("@") and len(w) > 1 else w[0]
                ops[op.split(".")[0].rstrip(";")] += 1
    return ops


def _divisible(kern, sig: dict, ints: dict) -> list[int]:
    """Argument indices Triton would mark 16-divisible: every pointer, and the integers in ``ints`` that are."""
    return [i for i, k in enumerate(kern.arg_names) if k in sig
            and (sig[k].startswith("*") or (k in ints and ints[k] % 16 == 0))]


def _compile(kern, sig: dict, consts: dict, ints: dict, warps: int, maxnreg: int) -> tuple[list[str], collections.Counter]:
    import triton

    sig = {k: sig[k] for k in kern.arg_names if k in sig}
    real = triton.compile

    def capped(src, target=None, options=None):
        return real(src, target=target, options={**(options or {}), **({"maxnreg": maxnreg} if maxnreg else {})})

    triton.compile = capped
    try:
        _, _, regs, cubin = _build(kern, sig, consts, _divisible(kern, sig, ints), warps)
    finally:
        triton.compile = real
    return regs, _sass_ops(cubin)


def scan1_row(tile: tuple[int, int, int], persist: bool, maxnreg: int = 0,
              lbw: int = 1, dtype: str = "bf16", hints: int = 3) -> tuple[list[str], collections.Counter]:
    """scan1's forward (log gates, no state; ``dtype`` storage, ``bf16`` or ``fp32``) at issue 3's shape; ``lbw``:
    the look-back window of the one-program-a-tile kernel (``SEQLAB_SCAN1_LOOKBACK_WINDOW``)."""
    from seqlab.kernels.scan1.triton_persist import _scan1_fwd_persist_kernel
    from seqlab.kernels.scan1.triton_scan import _scan1_fwd_kernel

    ct, bd, w = tile
    bc = 32 * w
    B, T, D = SCAN1["B"], SCAN1["T"], SCAN1["D"]
    nch, nd = T // ct, D // bd
    ints = dict(L=T, D=D, NSEQ=B, NCH=nch, nD=nd, NT=B * nch * nd)
    sig = {"a_ptr": f"*{dtype}", "b_ptr": f"*{dtype}", "h_ptr": f"*{dtype}", "ws_ptr": "*i64", "cnt_ptr": "*i64",
           **{k: "i32" for k in ints}}
    consts = dict(h0_ptr=None, ht_ptr=None, seq_ptr=None, cu_ptr=None, LOG_A=1, HAS_H0=0, STORE_FINAL=0,
                  IS_VARLEN=0, REVERSE=0, CT=ct, BC=bc, VEC=bd // bc, NO_INCLUSIVE=0, EARLY=1, I64=0, TWO=1,
                  OPAQUE=1, HINTS=hints, FLAT=1, DK=D)
    if persist:
        kern, consts["PACK"] = _scan1_fwd_persist_kernel, int(bd // bc == 2)
    else:
        kern, consts["TICKET"], consts["ABLATE"], consts["LBW"] = _scan1_fwd_kernel, 0, 0, lbw
        sig.pop("NT")
    return _compile(kern, sig, consts, ints, w, maxnreg)


def pa_row(tile: tuple[int, int, int], persist: bool, inline: bool, maxnreg: int = 0, lbw: int = 1):
    """prefix_attention's bf16 value scan (no initial state, final state stored) at issue 4's shape; ``lbw``: the
    look-back window of the one-program-a-tile kernel (``SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW``)."""
    from seqlab.kernels.prefix_attention.triton_lin import _pa_scan_fwd_kernel
    from seqlab.kernels.prefix_attention.triton_lin_persist import _pa_scan_fwd_persist_kernel

    ct, bd, w = tile
    bc = 32 * w
    B, T, H, V = PA["B"], PA["T"], PA["H"], PA["V"]
    nch, nd = T // ct, H * V // bd
    ints = dict(L=T, NSEQ=B, NCH=nch, nD=nd, NT=B * nch * nd)
    sig = {"beta": "*fp32", "v": "*bf16", "o": "*bf16", "uT": "*fp32", "wT": "*fp32", "ws_ptr": "*i64",
           "cnt_ptr": "*i64", **{k: "i32" for k in ints}}
    consts = dict(u0=None, w0=None, seq_ptr=None, cu_ptr=None, H=H, V=V, HAS_H0=0, STORE_FINAL=1, IS_VARLEN=0,
                  CT=ct, BC=bc, VEC=bd // bc, GROUP_HEAD=1, NO_INCLUSIVE=0, EARLY=1, I64=0, TWO=1, OPAQUE=1,
                  HINTS=3, FLAT=1, m0=None, INLINE=int(inline), NHP=max(1, bd // V), BP=64)
    if inline:
        sig.update({"s": "*fp32", "sm": "*fp32", "sw": "*fp32", "lse": "*fp32", "mT": "*fp32"})
    else:
        consts.update(s=None, sm=None, sw=None, lse=None, mT=None)
    if persist:
        kern, consts["PACK"] = _pa_scan_fwd_persist_kernel, int(bd // bc == 2)
    else:
        kern, consts["TICKET"], consts["LBW"] = _pa_scan_fwd_kernel, 0, lbw
        sig.pop("NT")
    return _compile(kern, sig, consts, ints, w, maxnreg)


def _line(label: str, tile, regs: list[str], ops: collections.Counter) -> str:
    used = next((r.split("Used ")[1].split(" registers")[0] for r in regs if "Used " in r), "?")
    spill = next((r.split(",")[1].strip().split(" bytes")[0] for r in regs if "spill stores" in r), "?")
    return (f"{label:34s} {','.join(map(str, tile)):9s} {used:>4s} regs  {spill:>4s} B spilled  "
            f"{sum(ops.values()):5d} instr  BAR {ops['BAR']:3d}  LDS {ops['LDS']:3d}  STS {ops['STS']:3d}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", nargs="*", default=["32,128,2", "16,128,2", "64,128,2", "64,64,1"])
    ap.add_argument("--maxnreg", type=int, default=0, help="register cap a thread (0: none)")
    ap.add_argument("--no-persist", action="store_true", help="one program a tile only")
    ap.add_argument("--lbw", type=int, default=1, help="look-back window of the one-tile forwards (SEQLAB_SCAN1_LOOKBACK_WINDOW, "
                    "SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="scan1's storage dtype")
    ap.add_argument("--hints", type=int, default=3, help="scan1's HINTS constexpr (cache hints; 0 none)")
    ap.add_argument("--scan1-only", action="store_true", help="skip prefix_attention's rows")
    args = ap.parse_args()
    for t in args.tiles:
        tile = tuple(int(x) for x in t.split(","))
        for persist in (False,) if args.no_persist else (False, True):
            kind = "persistent" if persist else "one tile a program"
            dt = "" if args.dtype == "bf16" else f" {args.dtype}"
            print(_line(f"scan1 fwd{dt}, {kind}", tile,
                        *scan1_row(tile, persist, args.maxnreg, args.lbw, args.dtype, args.hints)), flush=True)
            if args.scan1_only:
                continue
            for inline in (False, True):
                label = f"pa value scan, {'inline, ' if inline else ''}{kind}"
                print(_line(label, tile, *pa_row(tile, persist, inline, args.maxnreg, args.lbw)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
