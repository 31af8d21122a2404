"""Host (Python) time of one eager forward+backward of scan1 on the GPU, beside accelerated-scan, and of
prefix_attention: wall time per call with the GPU kept busy or idle, and a cProfile table of scan1's call path. It finds launch-path costs that CUDA-graph
replays hide and eager ``do_bench`` rows include (docs/results.md, scan1, eighth session).

    source benchmarks/device_env.sh && python3 benchmarks/host_profile.py
"""
from __future__ import annotations

import cProfile
import pstats
import time

import torch
import torch.nn.functional as F


def wall_us(fn, n: int = 200) -> tuple[float, float]:
    """(host us per call without waiting for the GPU, us per call with a synchronize after every call)."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t) / n * 1e6
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
        torch.cuda.synchronize()
    return host, (time.perf_counter() - t) / n * 1e6


def main() -> None:
    from accelerated_scan.scalar import scan as acc_scan

    from seqlab.kernels import prefix_attention, scan1

    for B, T, D in ((8, 8192, 1024), (1, 64, 64)):
        x = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        g = F.logsigmoid(torch.randn(B, T, D, device="cuda")).to(torch.bfloat16).requires_grad_()
        do = torch.randn_like(x)
        xa = x.detach().transpose(1, 2).contiguous().requires_grad_()
        fa = g.detach().float().exp().to(torch.bfloat16).transpose(1, 2).contiguous().requires_grad_()
        doa = do.transpose(1, 2).contiguous()
        cases = {
            "ours fwd": lambda: scan1(None, x, log_a=g),
            "ours fwd+bwd": lambda: torch.autograd.grad(scan1(None, x, log_a=g)[0], (x, g), do),
            "accelerated-scan fwd": lambda: acc_scan(fa, xa),
            "accelerated-scan fwd+bwd": lambda: torch.autograd.grad(acc_scan(fa, xa), (fa, xa), doa),
        }
        for name, fn in cases.items():
            host, synced = wall_us(fn)
            print(f"B{B} T{T} D{D} {name:28s} host {host:8.1f} us/call   synced {synced:8.1f} us/call", flush=True)
        Hh = 16 if B == 8 else 2
        sc = torch.randn(B // 2 or 1, T // 2, Hh, device="cuda", requires_grad=True)
        vv = torch.randn(B // 2 or 1, T // 2, Hh, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        dv = torch.randn_like(vv)
        pa = {"prefix_attention fwd": lambda: prefix_attention(sc, vv),
              "prefix_attention fwd+bwd": lambda: torch.autograd.grad(prefix_attention(sc, vv)[0], (sc, vv), dv)}
        for name, fn in pa.items():
            host, synced = wall_us(fn)
            print(f"B{sc.shape[0]} T{sc.shape[1]} H{Hh} V128 {name:24s} host {host:8.1f} us/call   synced {synced:8.1f} "
                  "us/call", flush=True)
        if B == 1:
            fn = cases["ours fwd+bwd"]
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(200):
                fn()
            pr.disable()
            torch.cuda.synchronize()
            pstats.Stats(pr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
