"""CPU benchmark: the chunked PyTorch forms (the CPU path of seqlab.kernels) against the naive recurrent loop.

Target (issue 3): simple_gla chunked >= 10x faster than the naive loop at B=4 T=2048 H=4 K=V=64 on 2 cores.
Also scan1 chunked vs naive at B=4 T=2048 D=256 (forward), and scan1's forward+backward: the op's CPU path
(chunked forward, analytic backward) vs autograd through the naive loop. Float32, median of ``--reps`` runs.
Prints a table; ``--json PATH`` writes the rows.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from seqlab.kernels.scan1 import scan1, scan1_chunked, scan1_naive
from seqlab.kernels.simple_gla import simple_gla_chunked, simple_gla_naive


def _time(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        B, T, H, K, V = 4, 2048, 4, 64, 64
        q, k = torch.randn(B, T, H, K), F.normalize(torch.randn(B, T, H, K), dim=-1)
        v, g = torch.randn(B, T, H, V), F.logsigmoid(torch.randn(B, T, H))
        tag = f"B{B} T{T} H{H} K{K} V{V} fp32"
        naive = _time(lambda: simple_gla_naive(q, k, v, g, K**-0.5), args.reps)
        chunk = _time(lambda: simple_gla_chunked(q, k, v, g, K**-0.5), args.reps)
        err = (simple_gla_chunked(q, k, v, g, K**-0.5)[0] - simple_gla_naive(q, k, v, g, K**-0.5)[0]).abs().max()
        rows += [dict(name=f"simple_gla naive loop {tag}", ms=naive),
                 dict(name=f"simple_gla chunked torch {tag}", ms=chunk, speedup=naive / chunk,
                      max_abs_diff=err.item())]
        B, T, D = 4, 2048, 256
        a, b = torch.sigmoid(torch.randn(B, T, D)), torch.randn(B, T, D)
        tag = f"B{B} T{T} D{D} fp32"
        naive = _time(lambda: scan1_naive(a, b), args.reps)
        chunk = _time(lambda: scan1_chunked(a, b), args.reps)
        rows += [dict(name=f"scan1 naive loop {tag}", ms=naive),
                 dict(name=f"scan1 chunked torch {tag}", ms=chunk, speedup=naive / chunk)]
    # forward+backward: autograd through the naive loop vs the op's CPU path (chunked forward, analytic backward)
    la = F.logsigmoid(torch.randn(B, T, D)).requires_grad_()
    b = b.clone().requires_grad_()
    naive = _time(lambda: scan1_naive(la.exp(), b)[0].sum().backward(), max(1, args.reps // 2))
    op = _time(lambda: scan1(None, b, log_a=la, backend="torch")[0].sum().backward(), args.reps)
    rows += [dict(name=f"scan1 fwd+bwd naive loop (autograd) {tag}", ms=naive),
             dict(name=f"scan1 fwd+bwd seqlab op, torch backend {tag}", ms=op, speedup=naive / op)]
    # wide steps (Mamba's d_inner * N channels): the op's CPU path takes scan1_loop
    B, T, D = 4, 512, 8192
    tag = f"B{B} T{T} D{D} fp32"
    la = F.logsigmoid(torch.randn(B, T, D)).requires_grad_()
    b = torch.randn(B, T, D, requires_grad=True)
    naive = _time(lambda: scan1_naive(la.exp(), b)[0].sum().backward(), max(1, args.reps // 2))
    op = _time(lambda: scan1(None, b, log_a=la, backend="torch")[0].sum().backward(), args.reps)
    with torch.no_grad():
        chunk = _time(lambda: scan1_chunked(la.exp(), b), args.reps)
        fwd = _time(lambda: scan1(None, b, log_a=la, backend="torch"), args.reps)
    rows += [dict(name=f"scan1 fwd chunked torch {tag}", ms=chunk),
             dict(name=f"scan1 fwd seqlab op, torch backend (loop) {tag}", ms=fwd, speedup=chunk / fwd),
             dict(name=f"scan1 fwd+bwd naive loop (autograd) {tag}", ms=naive),
             dict(name=f"scan1 fwd+bwd seqlab op, torch backend {tag}", ms=op, speedup=naive / op)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for r in rows:
        extra = f"  speedup {r['speedup']:.1f}x" if "speedup" in r else ""
        print(f"{r['name']:50s} {r['ms']:10.2f} ms{extra}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(threads=torch.get_num_threads(), torch=torch.__version__, rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
