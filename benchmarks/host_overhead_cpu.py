"""Host time of one eager scan1 forward+backward on the CPU with the Triton launches replaced by no-ops: the eager
twin (``seqlab.kernels._eager``, what ``scan1`` calls) against the ``torch.library`` custom op it wraps. It isolates
the Python call path; the GPU host's figures come from ``benchmarks/host_profile.py`` (docs/results.md).

    TRITON_INTERPRET=1 python3 benchmarks/host_overhead_cpu.py
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F


class _NoLaunch:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def _us(fn, n: int = 500) -> float:
    for _ in range(50):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main(rounds: int = 2, n: int = 500) -> int:
    import seqlab.kernels.scan1  # noqa: F401
    from seqlab.kernels.scan1 import triton_launch

    mod = sys.modules["seqlab.kernels.scan1"]
    kernels = triton_launch._scan1_fwd_kernel, triton_launch._scan1_bwd_kernel
    triton_launch._scan1_fwd_kernel = triton_launch._scan1_bwd_kernel = _NoLaunch()
    try:
        x = torch.randn(1, 64, 64, requires_grad=True)
        g = F.logsigmoid(torch.randn(1, 64, 64)).requires_grad_()
        do = torch.randn_like(x)
        args = (g, x, None, None, True, False, False, "triton")
        cases = {"eager twin": lambda: torch.autograd.grad(mod._scan1_fwd(*args)[0], (x, g), do),
                 "custom op": lambda: torch.autograd.grad(mod._scan1_fwd_op(*args)[0], (x, g), do)}
        for rnd in range(rounds):
            for name, fn in cases.items():
                print(f"round {rnd + 1}  {name:10s}  {_us(fn, n):7.1f} us per fwd+bwd (B1 T64 D64, kernels not "
                      "launched)")
    finally:
        triton_launch._scan1_fwd_kernel, triton_launch._scan1_bwd_kernel = kernels
    return 0


if __name__ == "__main__":
    sys.exit(main())
