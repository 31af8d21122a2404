"""Where scan1's GPU time goes: torch.profiler over the forward and the forward+backward of ``seqlab.kernels.scan1``
at the issue-3 shape (B=8 T=8192 D=1024, log gates), one table of CUDA kernels (memsets included) per tile config.

It separates the scan kernels from their host-side helpers (the look-back form's zeroed workspace), which
``benchmarks/scan1_sweep.py``'s wall-clock rows cannot. Usage on the lent GPU::

    source benchmarks/device_env.sh && python3 benchmarks/scan1_profile.py --configs "default;32,32,1" \
        --json $OUT/scan1_profile.json

``--configs`` takes ``default`` or ``SEQLAB_SCAN1_CFG`` values (``CT,BD,W``).
On a machine without CUDA it profiles a tiny shape on the CPU as a smoke test of the script.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _profiling import kernel_table, print_table, write_tables  # noqa: E402


def profile(cfg: str, dtype: torch.dtype, B: int, T: int, D: int, reps: int = 5) -> list[dict]:
    """Kernel table (name, calls, device microseconds per call) of ``reps`` forward and fwd+bwd calls."""
    from seqlab.kernels import scan1

    if cfg == "default":
        os.environ.pop("SEQLAB_SCAN1_CFG", None)
    else:
        os.environ["SEQLAB_SCAN1_CFG"] = cfg
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    x = torch.randn(B, T, D, device=dev, dtype=dtype, requires_grad=True)
    g = F.logsigmoid(torch.randn(B, T, D, device=dev)).to(dtype).requires_grad_()
    do = torch.randn_like(x)
    backend = "triton" if cuda else "torch"

    def step():  # gradients by autograd.grad: no .grad accumulation kernels in the profile
        torch.autograd.grad(scan1(None, x, log_a=g, backend=backend)[0], (x, g), do)

    return kernel_table(step, reps, top=12, width=70)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="default")
    ap.add_argument("--json")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    B, T, D = (8, 8192, 1024) if cuda else (1, 64, 32)
    out = {}
    for dtype in ((torch.bfloat16, torch.float32) if cuda else (torch.float32,)):
        for cfg in args.configs.split(";"):
            rows = profile(cfg, dtype, B, T, D)
            key = f"{cfg} {str(dtype)[6:]}"
            out[key] = rows
            print_table(f"{key}: B{B} T{T} D{D}, device time per fwd+bwd step", rows)
    write_tables(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
