"""Where gla's GPU time goes: torch.profiler kernel tables for seqlab's ``gla`` (Triton) and, with ``--peer``, fla
0.6.0's ``chunk_gla``, forward and forward+backward, at the issue-4 shape (B=4 T=4096 H=16 K=V=128 bf16).

The wall-clock rows of ``benchmarks/kernels_ii.py --only gla`` give one number per pass; this splits it per kernel
so that each of our launches can be set against fla's. Ours are printed first (fla's autotune can take minutes).
Usage on the lent GPU::

    source benchmarks/device_env.sh && python3 benchmarks/gla_profile.py --peer --json $OUT/gla_profile.json

On a machine without CUDA it profiles a tiny shape of the PyTorch path on the CPU (a smoke test of the script).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import kernel_table, print_table, write_tables  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="store_true", help="also profile fla chunk_gla")
    ap.add_argument("--json")
    args = ap.parse_args()
    from seqlab.kernels import gla

    cuda = torch.cuda.is_available()
    dev, dt = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    B, T, H, K, V = (4, 4096, 16, 128, 128) if cuda else (1, 128, 2, 16, 16)
    torch.manual_seed(0)
    q = torch.randn(B, T, H, K, device=dev, dtype=dt)
    k = F.normalize(torch.randn(B, T, H, K, device=dev), dim=-1).to(dt)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    g = F.logsigmoid(torch.randn(B, T, H, K, device=dev)) / 16
    xs = [x.requires_grad_() for x in (q, k, v, g)]
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)
    fns = {"seqlab gla": lambda: gla(*xs, backend="triton" if cuda else "torch")}
    if args.peer and cuda:
        from fla.ops.gla import chunk_gla
        fns["fla chunk_gla"] = lambda: chunk_gla(xs[0], xs[1], xs[2], g=xs[3])
    out = {}
    for name, fn in fns.items():
        for bwd in (False, True):
            def step(fn=fn, bwd=bwd):
                o = fn()[0]
                if bwd:
                    torch.autograd.grad(o, xs, do)
            key = f"{name} {'fwd+bwd' if bwd else 'fwd'}"
            rows = kernel_table(step)
            out[key] = rows
            total = sum(r["us_per_step"] for r in rows)
            print_table(f"{key}: B{B} T{T} H{H} K{K} V{V} {str(dt)[6:]}, device us per step (sum {total:.1f})", rows)
    write_tables(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
