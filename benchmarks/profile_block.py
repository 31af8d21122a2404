"""Where a block's GPU time goes: torch.profiler over forward+backward of one ``seqlab.core`` block, one table of
the CUDA kernels by total device time per block (the layer-vs-fla gap in docs/results.md, Blocks, is in the code
around our scan kernels; this names it).

Rows are benchmarks/blocks.py's (``row_spec``/``build_row``: the same settings, fla's layers included), so the
two sides of a pair can be read kernel by kernel. Usage (lent GPU, fla from the carried wheels)::

    source benchmarks/device_env.sh && python3 benchmarks/profile_block.py "ours deltanet" "fla DeltaNet" \
        --json $OUT/profile.json

B=8 T=4096 d_model=1024 bf16, 8 heads, as benchmarks/blocks.py (``--b/--t/--d/--heads``); a row name ending in
`` (compiled)`` is the block under ``torch.compile(fullgraph=True)``. On CPU (no CUDA) it runs a tiny shape as a
smoke test of the script.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os

import torch

_spec = importlib.util.spec_from_file_location("bench_blocks", os.path.join(os.path.dirname(__file__), "blocks.py"))
blocks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(blocks)


def profile(name: str, b: int, t: int, d: int, heads: int, rows: int = 25) -> list[dict]:
    """Profile 3 forward+backward calls of row ``name`` (after 3 warm-up calls); returns the top ``rows`` kernels."""
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    dt = torch.bfloat16 if cuda else torch.float32
    mod = blocks.build_row(name, d, heads)[0].to(dev, dt)
    _, step = blocks._passes(mod, torch.randn(b, t, d, device=dev, dtype=dt))

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(3):
            step()
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    evs = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in evs if getattr(e, key) > 0) or 1.0
    out = []
    for e in evs[:rows]:
        us = getattr(e, key) / 3
        if us <= 0:
            break
        out.append(dict(kernel=e.key[:110], calls=e.count // 3, us_per_step=round(us, 1),
                        share=round(getattr(e, key) / total, 4)))
    print(f"\n== {name}: B{b} T{t} d{d} {str(dt).removeprefix('torch.')}, "
          f"{total / 3 / 1000:.2f} ms of {'device' if cuda else 'CPU'} time per fwd+bwd (all kernels)", flush=True)
    print(f"{'us/step':>9} {'share':>6} {'calls':>5}  kernel")
    for r in out:
        print(f"{r['us_per_step']:9.1f} {r['share']:6.1%} {r['calls']:5d}  {r['kernel']}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rows", nargs="+", help="benchmarks/blocks.py row names, e.g. 'ours deltanet' 'fla DeltaNet'")
    p.add_argument("--b", type=int, default=8)
    p.add_argument("--t", type=int, default=4096)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--json")
    a = p.parse_args()
    if not torch.cuda.is_available():
        a.b, a.t, a.d, a.heads = 1, 64, 64, 2
    res = {}
    for name in a.rows:
        try:
            res[name] = profile(name, a.b, a.t, a.d, a.heads)
        except Exception as e:  # one failing block must not hide the others
            print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            res[name] = dict(error=str(e)[:300])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(args=vars(a), results=res), f, indent=1)


if __name__ == "__main__":
    main()
