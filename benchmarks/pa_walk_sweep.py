"""Kernel-level sweep of prefix_attention's walking forwards (``kernels/prefix_attention/triton_lin_walk.py``) beside
the default (score pass, look-back value scan), in one process: the forward's time from CUDA graphs for every row
``MODE CT,BC,VEC,W,S,TS[,SEGSCAN[,SREP]]`` (``MODE`` = ``fused``: the one-launch walk; ``1``: score pass, then the walking
value scan) or ``env K=V [K=V ...]`` (the default with those variables set), each row's ``o`` and ``lse`` checked against the default's (rel-RMS), and a copy of ``v`` timed in the
same run for the bandwidth fraction (issue 4's bar: the forward at >= 80% of copy bandwidth).

    source benchmarks/device_env.sh && python benchmarks/pa_walk_sweep.py --json $OUT/pa_walk_sweep.json

The built-in rows are ranked offline by the issue floor of their SASS loop
(``python3 benchmarks/scan1_walk_compile_counts.py --pa --dtype bf16 <row>``): the fourteenth session's bf16 fused
default ``64,8,4,1,8,4`` has a floor of 0.98x the copy time at B4 T4096 H16 V128 (two one-warp programs an SM
leave two of its four schedulers idle), ``128,4,4,1,4,8,1`` (16 channels a program, four an SM) 0.64x.
``--smoke`` runs every row once at a tiny shape without timing (``TRITON_INTERPRET=1`` on a CPU: the rows' logic and
checks, not their speed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import graph_bench  # noqa: E402

ROWS = ["fused 64,8,4,1,8,4", "fused 64,8,4,1,8,4,1", "fused 128,4,4,1,4,8,1", "fused 128,4,4,1,6,8,1",
        "fused 64,8,2,1,8,4", "fused 64,8,2,1,8,4,1", "fused 128,8,2,1,4,8,1", "fused 64,4,4,1,8,8,1",
        "fused 64,8,4,1,8,4,0,0", "fused 128,4,4,1,4,8,1,0", "1 64,8,4,1,8,4", "1 64,8,2,1,8,4"]
FLAGS = ("SEQLAB_PREFIX_ATTN_SCAN_WALK", "SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG", "SEQLAB_SCAN1_WALK_SEGSCAN",
         "SEQLAB_PREFIX_ATTN_FUSED_SREP")


def _rel(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.float(), y.float()
    keep = torch.isfinite(y)
    if not torch.equal(torch.isfinite(x), keep):
        return float("inf")
    x, y = x[keep], y[keep]
    return ((x - y).pow(2).mean() / y.pow(2).mean().clamp_min(1e-30)).sqrt().item()


_ENV_SET: list[str] = []  # keys set by ``env`` rows, cleared with the walk flags


def _set(row: str | None) -> None:
    """Set the walk flags for ``row`` (``None``: the default forward). ``env K=V [K=V ...]`` rows set those
    variables instead (e.g. ``env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline``: the look-back form with another option)."""
    for k in (*FLAGS, *_ENV_SET):
        os.environ.pop(k, None)
    _ENV_SET.clear()
    if row is None:
        return
    if row.startswith("env "):
        for kv in row.split()[1:]:
            k, eq, val = kv.partition("=")
            if not eq or not k.startswith("SEQLAB_"):
                raise ValueError(f"env rows take SEQLAB_*=VALUE pairs, got {kv!r} in {row!r}")
            os.environ[k] = val
            _ENV_SET.append(k)
        return
    mode, cfg = row.split()
    vals = cfg.split(",")
    if mode not in ("fused", "1") or len(vals) not in (6, 7, 8):
        raise ValueError(f"row must be 'fused|1 CT,BC,VEC,W,S,TS[,SEGSCAN[,SREP]]', got {row!r}")
    os.environ["SEQLAB_PREFIX_ATTN_SCAN_WALK"] = mode
    os.environ["SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG"] = ",".join(vals[:6])
    os.environ["SEQLAB_SCAN1_WALK_SEGSCAN"] = vals[6] if len(vals) > 6 else "0"
    if len(vals) > 7:  # the fused walk's score tile (SEQLAB_PREFIX_ATTN_FUSED_SREP; default 2, one [1, CT] tile)
        os.environ["SEQLAB_PREFIX_ATTN_FUSED_SREP"] = vals[7]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--shape", default="4,4096,16,128", help="B,T,H,V")
    ap.add_argument("--rows", default=None, help="semicolon list of rows instead of the built-in ones")
    ap.add_argument("--smoke", action="store_true", help="tiny shape, no timing (CPU interpreter check)")
    args = ap.parse_args()
    from seqlab.kernels.prefix_attention.triton_lin import prefix_attention_fwd_scan

    dev = "cpu" if args.smoke else "cuda"
    B, T, H, V = (1, 70, 2, 32) if args.smoke else tuple(int(x) for x in args.shape.split(","))
    bench = graph_bench(args.smoke)
    dt = getattr(torch, args.dtype)
    g = torch.Generator(device=dev).manual_seed(0)
    s = (3 * torch.randn(B, T, H, device=dev, generator=g)).float()
    v = torch.randn(B, T, H, V, device=dev, generator=g).to(dt)
    nbytes = 2 * v.numel() * v.element_size() + 2 * s.numel() * 4  # read s, v; write o, lse

    def fwd():
        return prefix_attention_fwd_scan(s, v, None, None, None, None)

    out = []
    _set(None)
    try:
        o_ref, _, _, _, lse_ref = fwd()
        rows = [("default", None)] + [(r, r) for r in (args.rows.split(";") if args.rows else ROWS)]
        for name, row in rows:
            try:
                _set(row)
                o, _, _, _, lse = fwd()
                ms = bench(fwd)
            except Exception as e:  # noqa: BLE001 - a row that fails to build or run is reported, the sweep goes on
                print(f"{name:24s} FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
                out.append(dict(row=name, ok=False, error=f"{type(e).__name__}: {str(e)[:200]}"))
                continue
            errs = [_rel(o, o_ref), _rel(lse, lse_ref)]
            ok = all(math.isfinite(x) and x < (1e-5 if v.element_size() == 4 else 2e-2) for x in errs)
            rec = dict(row=name, fwd_ms=ms, GBps=nbytes / ms / 1e6, rel_o=errs[0], rel_lse=errs[1], ok=ok)
            out.append(rec)
            print(f"{name:24s} fwd {ms:.4f} ms ({rec['GBps']:5.0f} GB/s)  rel o {errs[0]:.1e} lse {errs[1]:.1e} "
                  f"ok={ok}", flush=True)
    finally:
        _set(None)
    if not args.smoke:
        buf = torch.empty_like(v)
        ms = bench(lambda: buf.copy_(v))
        copy = 2 * v.numel() * v.element_size() / ms / 1e6
        out.append(dict(row="copy of v", fwd_ms=ms, GBps=copy))
        print(f"{'copy of v':24s}     {ms:.4f} ms ({copy:5.0f} GB/s)", flush=True)
        for r in out:
            if "GBps" in r and r["row"] != "copy of v":
                r["copy_fraction"] = r["GBps"] / copy
                print(f"{r['row']:24s} {100 * r['copy_fraction']:5.1f}% of copy bandwidth (bar 80%)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if not args.smoke else "cpu", "shape": [B, T, H, V],
                       "dtype": args.dtype, "rows": out}, f, indent=1)
    return 0 if all(r.get("ok", True) for r in out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
