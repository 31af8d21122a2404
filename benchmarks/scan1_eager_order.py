"""Eager forward+backward of scan1 in bf16 at B8 T8192 D1024, the gate as ``log_a``, as ``a`` and with ``h0``, each
timed twice in alternating order (CUDA events around one synchronised step, median of 20 after 5 warm-ups), then a
torch.profiler table of a ``log_a`` and an ``a`` step: whether a row's eager time depends on the order it runs in
(fifteenth session: kernels.py's first bf16 fwd+bwd row took 0.351 ms, the next two 0.61-0.62).

Fifteenth session, H200 (16-core host): every row 1.05-1.15 ms a synchronised step against 0.12 ms (look-back
forward) + 0.20-0.22 ms (walking backward) of kernel time in the profiler: the synchronised eager step is bound by
the host, so back-to-back eager rows (kernels.py) measure host speed whenever it falls below the GPU's.

    source benchmarks/device_env.sh && python benchmarks/scan1_eager_order.py --json $OUT/eager_order.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import step_ms  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from seqlab.kernels import scan1

    dev, dt = "cuda", torch.bfloat16
    B, T, D = 8, 8192, 1024
    xs = torch.randn(B, T, D, device=dev, dtype=dt)
    gs = F.logsigmoid(torch.randn(B, T, D, device=dev)).to(dt)
    a_lin = gs.float().exp().to(dt)
    do = torch.randn_like(xs)
    h0 = torch.randn(B, D, device=dev)
    xr, gr, ar = (t.clone().requires_grad_() for t in (xs, gs, a_lin))
    h0r = h0.clone().requires_grad_()
    runs = {
        "log_a": lambda: torch.autograd.grad(scan1(None, xr, log_a=gr)[0], (xr, gr), do),
        "a": lambda: torch.autograd.grad(scan1(ar, xr)[0], (ar, xr), do),
        "log_a+h0": lambda: torch.autograd.grad(scan1(None, xr, log_a=gr, initial_state=h0r)[0], (xr, gr, h0r), do),
    }

    out = []
    for rnd in range(2):
        for name in (list(runs) if rnd == 0 else list(runs)[::-1]):
            ms = step_ms(runs[name], 5, 20, cuda=True)
            out.append(dict(round=rnd, row=name, fwd_bwd_ms=ms))
            print(f"round {rnd} {name:10s} fwd+bwd {ms:.4f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": out}, f, indent=1)
    from torch.profiler import ProfilerActivity, profile

    for name in ("log_a", "a"):
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                runs[name]()
            torch.cuda.synchronize()
        print(f"== profile {name}", flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
