"""Host (Python) time of the pieces of one eager scan1 forward on the GPU, so the launch path can be cut where it
costs: the workspace fill, output allocation, the bare Triton launch of the forward kernel, ``scan1_fwd``, the
public op without and with autograd, and accelerated-scan's forward beside them.

Each row is host microseconds per call over ``--n`` calls at a small shape (B1 T64 D64, so the GPU never holds the
host back), synchronizing every 50 calls. The ninth session found 271 us of host time per eager forward at B=8
T=8192 D=1024 against accelerated-scan's 44 us (docs/results.md).

    source benchmarks/device_env.sh && python3 benchmarks/host_parts.py
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F


def host_us(fn, n: int) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    total = 0.0
    for _ in range(n // 50):
        t = time.perf_counter()
        for _ in range(50):
            fn()
        total += time.perf_counter() - t
        torch.cuda.synchronize()
    return total / (n // 50 * 50) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json")
    args = ap.parse_args()
    import triton
    import triton.language as tl

    from seqlab.kernels import scan1
    from seqlab.kernels.scan1 import triton_launch as tla

    @triton.jit
    def _noop(x_ptr, n):
        pass

    B, T, D = 1, 64, 64
    dev = "cuda"
    b = torch.randn(B, T, D, device=dev, dtype=torch.bfloat16)
    la = F.logsigmoid(torch.randn(B, T, D, device=dev)).to(torch.bfloat16)
    br, lar = b.clone().requires_grad_(), la.clone().requires_grad_()
    ct, bd, w = tla._config(b.dtype, D, T)
    bc, vec = tla._lanes(bd, w)
    nseq, L, nch, nd, seq_idx, ws = tla._geometry(b, None, ct, bd, counter=False)
    h = torch.empty_like(b)

    def bare():
        tla._scan1_fwd_kernel[(nseq * nch * nd,)](
            la, b, None, h, None, None, None, ws, ws[-2:], L, D, nseq, nch, nd,
            LOG_A=True, HAS_H0=False, STORE_FINAL=False, IS_VARLEN=False, REVERSE=False, CT=ct, BC=bc, VEC=vec,
            NO_INCLUSIVE=False, TICKET=False, EARLY=True, I64=False, num_warps=w)

    rows = []
    parts = [
        ("torch.empty_like", lambda: torch.empty_like(b)),
        ("torch.full workspace (B8 T8192 D1024 size)", lambda: torch.full((8 * 256 * 1024 + 2,), -1, device=dev,
                                                                          dtype=torch.int64)),
        ("torch.full workspace (this shape)", lambda: torch.full((ws.numel(),), -1, device=dev, dtype=torch.int64)),
        ("triton launch, 2-arg no-op kernel", lambda: _noop[(1,)](b, 1)),
        ("triton launch, scan1 forward kernel", bare),
        ("scan1_fwd (configs, workspace, launch)", lambda: tla.scan1_fwd(la, b, None, None, True, False, False)),
        ("scan1 public op, no grad", lambda: scan1(None, b, log_a=la)),
        ("scan1 public op, inputs need grad", lambda: scan1(None, br, log_a=lar)),
        ("scan1 fwd+bwd", lambda: torch.autograd.grad(scan1(None, br, log_a=lar)[0].sum(), (br, lar))),
    ]
    do = torch.randn_like(b)

    class _Id(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g

    def no_threads(fn):
        def run():
            with torch.autograd.set_multithreading_enabled(False):
                return fn()
        return run

    fb = lambda: torch.autograd.grad(scan1(None, br, log_a=lar)[0], (br, lar), do)  # noqa: E731
    parts += [
        ("scan1_bwd (configs, workspace, launch)", lambda: tla.scan1_bwd(la, None, b, do, None, None, True, False)),
        ("autograd.grad through an identity Function", lambda: torch.autograd.grad(_Id.apply(br), (br,), do)),
        ("scan1 fwd+bwd, given do", fb),
        ("scan1 fwd+bwd, given do, autograd on this thread", no_threads(fb)),
    ]
    try:
        from accelerated_scan.scalar import scan as acc_scan

        fa, xa = la.float().exp().to(b.dtype).transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous()
        far, xar, doa = fa.clone().requires_grad_(), xa.clone().requires_grad_(), do.transpose(1, 2).contiguous()
        afb = lambda: torch.autograd.grad(acc_scan(far, xar), (far, xar), doa)  # noqa: E731
        parts += [("accelerated-scan forward", lambda: acc_scan(fa, xa)),
                  ("accelerated-scan fwd+bwd, given do", afb),
                  ("accelerated-scan fwd+bwd, autograd on this thread", no_threads(afb))]
    except ImportError:
        pass
    for name, fn in parts:
        us = host_us(fn, args.n)
        rows.append({"name": name, "host_us": us})
        print(f"{name:50s} {us:8.1f} us/call", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
