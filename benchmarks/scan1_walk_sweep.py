"""Kernel-level sweep of scan1's walking kernels (``kernels/scan1/triton_walk.py``) beside the look-back kernels and
accelerated-scan, in one process: forward and backward kernel times from CUDA graphs for every
``CT,BC,VEC,W,S,TS[,SEGSCAN]`` row, each row's outputs checked against the look-back kernels' (rel-RMS).

    source benchmarks/device_env.sh && python benchmarks/scan1_walk_sweep.py --json $OUT/walk_sweep.json

``--smoke`` runs every row once at a tiny shape without timing (``TRITON_INTERPRET=1`` on a CPU: the rows' logic
and correctness checks, not their speed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import graph_bench  # noqa: E402

# dtype -> walking tiles "CT,BC,VEC,W,S,TS[,SEGSCAN]" (forward and backward kernels alike). Two adjacent channels a
# thread (VEC = 2) leave 2 threads for the segments: 12 / 20 shuffles a build against 112 / 176 at VEC = 4 (sm_90,
# benchmarks/scan1_walk_compile_counts.py), at the price of 8-byte (float32) or 4-byte (bf16) copies.
ROWS = {
    "float32": ["64,32,1,1,3,4", "64,32,1,1,3,4,1", "32,32,1,1,4,4", "32,32,1,1,4,4,1", "64,32,1,1,3,2",
                "128,32,1,1,2,8,1", "64,64,1,2,3,4,1", "64,32,1,1,4,4,1", "32,32,1,1,6,4,1", "32,16,2,1,4,2"],
    "bfloat16": ["64,8,4,1,5,4", "64,8,4,1,3,4", "64,8,4,1,5,4,1", "32,8,4,1,6,4", "64,8,4,1,8,4",
                 "64,32,1,1,3,8,1", "64,64,1,2,3,4,1", "32,16,2,1,6,2",
                 # fourteenth session, ranked by the issue floor of their SASS loop (scan1_walk_compile_counts.py):
                 # 16 channels a program (four one-warp programs an SM, every scheduler busy) or two warps a program
                 "64,8,2,1,5,4", "64,8,2,1,5,4,1", "128,4,4,1,3,8,1", "128,8,2,1,3,4,1", "64,16,2,2,5,8,1"],
}


def _rel(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.float(), y.float()
    return ((x - y).pow(2).mean() / y.pow(2).mean().clamp_min(1e-30)).sqrt().item()


def _set(row: str | None) -> None:
    for k in ("SEQLAB_SCAN1_WALK", "SEQLAB_SCAN1_WALK_CFG", "SEQLAB_SCAN1_WALK_BWD_CFG", "SEQLAB_SCAN1_WALK_SEGSCAN"):
        os.environ.pop(k, None)
    if row is None:
        os.environ["SEQLAB_SCAN1_WALK"] = "0"
        return
    vals = row.split(",")
    os.environ["SEQLAB_SCAN1_WALK"] = "1"
    os.environ["SEQLAB_SCAN1_WALK_CFG"] = os.environ["SEQLAB_SCAN1_WALK_BWD_CFG"] = ",".join(vals[:6])
    os.environ["SEQLAB_SCAN1_WALK_SEGSCAN"] = vals[6] if len(vals) > 6 else "0"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--shape", default="8,8192,1024")
    ap.add_argument("--rows", default=None, help="semicolon list of rows instead of the built-in ones (every dtype)")
    ap.add_argument("--smoke", action="store_true", help="tiny shape, no timing (CPU interpreter check)")
    args = ap.parse_args()
    from seqlab.kernels.scan1.triton_launch import scan1_bwd, scan1_fwd

    dev = "cpu" if args.smoke else "cuda"
    B, T, D = (2, 80, 64) if args.smoke else tuple(int(x) for x in args.shape.split(","))
    bench = graph_bench(args.smoke)
    out = []
    for dname in args.dtypes.split(","):
        dt = getattr(torch, dname)
        g = torch.Generator(device=dev).manual_seed(0)
        la = F.logsigmoid(torch.randn(B, T, D, device=dev, generator=g) + 1).to(dt)
        b = torch.randn(B, T, D, device=dev, generator=g).to(dt)
        do = torch.randn(B, T, D, device=dev, generator=g).to(dt)
        es = b.element_size()
        nf, nb = 3 * B * T * D * es, 5 * B * T * D * es

        def fwd():
            return scan1_fwd(la, b, None, None, True, False, False)[0]

        _set(None)
        h_ref = fwd()
        da_ref, db_ref, _ = scan1_bwd(la, None, h_ref, do, None, None, True, False)
        picked = args.rows.split(";") if args.rows else ROWS.get(dname, ROWS["bfloat16"])
        rows = [("look-back", None)] + [(r, r) for r in picked]
        for name, row in rows:
            _set(row)
            try:
                h = fwd()
                ms_f = bench(fwd)
                da, db, _ = scan1_bwd(la, None, h_ref, do, None, None, True, False)
                ms_b = bench(lambda: scan1_bwd(la, None, h_ref, do, None, None, True, False))
            except Exception as e:  # noqa: BLE001 - a row that fails to build or run is reported, the sweep goes on
                print(f"{dname} {name:20s} FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
                continue
            errs = [_rel(h, h_ref), _rel(da, da_ref), _rel(db, db_ref)]
            ok = all(math.isfinite(x) and x < (1e-5 if es == 4 else 2e-2) for x in errs)
            rec = dict(dtype=dname, row=name, fwd_ms=ms_f, bwd_ms=ms_b, fwd_GBps=nf / ms_f / 1e6,
                       bwd_GBps=nb / ms_b / 1e6, rel_h=errs[0], rel_da=errs[1], rel_db=errs[2], ok=ok)
            out.append(rec)
            print(f"{dname} {name:20s} fwd {ms_f:.4f} ms ({rec['fwd_GBps']:5.0f} GB/s)  bwd {ms_b:.4f} ms "
                  f"({rec['bwd_GBps']:5.0f} GB/s)  rel {errs[0]:.1e} {errs[1]:.1e} {errs[2]:.1e} ok={ok}", flush=True)
        if not args.smoke:
            try:
                from accelerated_scan.scalar import scan as acc_scan

                fa = la.float().exp().to(dt).transpose(1, 2).contiguous()
                xa = b.transpose(1, 2).contiguous()
                ms = bench(lambda: acc_scan(fa, xa))
                out.append(dict(dtype=dname, row="accelerated-scan", fwd_ms=ms, fwd_GBps=nf / ms / 1e6))
                print(f"{dname} {'accelerated-scan':20s} fwd {ms:.4f} ms ({nf / ms / 1e6:5.0f} GB/s)", flush=True)
            except ImportError:
                print("accelerated-scan not installed", flush=True)
            ms = bench(lambda: torch.add(la, b, out=do))
            out.append(dict(dtype=dname, row="torch add (3 passes)", fwd_ms=ms, fwd_GBps=nf / ms / 1e6))
            print(f"{dname} {'torch add (3 passes)':20s} fwd {ms:.4f} ms ({nf / ms / 1e6:5.0f} GB/s)", flush=True)
        _set(None)
        os.environ.pop("SEQLAB_SCAN1_WALK", None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if not args.smoke else "cpu", "rows": out}, f, indent=1)
    return 0 if all(r.get("ok", True) for r in out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
