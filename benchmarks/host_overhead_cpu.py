"""Host time of one eager scan1 forward+backward on the CPU with the Triton launches replaced by no-ops: the eager
twin (``seqlab.kernels._eager``, what ``scan1`` calls) against the ``torch.library`` custom op it wraps. It isolates
the Python call path; the GPU host's figures come from ``benchmarks/host_profile.py`` (docs/results.md). Then the
same for prefix_attention's forward forms (:func:`prefix_attention_rows`).

    TRITON_INTERPRET=1 python3 benchmarks/host_overhead_cpu.py
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F


class _NoLaunch:
    def __init__(self, kernel=None):
        self.configs = getattr(kernel, "configs", [])  # autotuned kernels: their launchers read the config list
        self.fn = getattr(kernel, "fn", kernel)

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
    prefix_attention_rows(rounds, n)
    return 0


def prefix_attention_rows(rounds: int = 2, n: int = 500) -> None:
    """Host time of one eager prefix_attention forward per forward form (``SEQLAB_PREFIX_ATTN_FWD``), every
    ``_pa_*_kernel`` launch a no-op (B1 T64 H2 V64)."""
    import os

    from seqlab.kernels import prefix_attention
    from seqlab.kernels.prefix_attention import triton_lin, triton_lin_persist, triton_lin_walk, triton_scan

    saved = {(m, k): getattr(m, k) for m in (triton_lin, triton_lin_persist, triton_lin_walk, triton_scan)
             for k in dir(m) if k.startswith("_pa_") and k.endswith("_kernel")}
    env = {k: os.environ.get(k) for k in ("SEQLAB_PREFIX_ATTN_FWD", "SEQLAB_PREFIX_ATTN_SCAN_WALK",
                                          "SEQLAB_PREFIX_ATTN_SCAN_LSE", "SEQLAB_PREFIX_ATTN_SCAN_CFG")}
    for (m, k), kern in saved.items():
        setattr(m, k, _NoLaunch(kern))
    try:
        s, v = torch.randn(1, 64, 2), torch.randn(1, 64, 2, 64)
        sg, vg = s.clone().requires_grad_(), v.clone().requires_grad_()
        for rnd in range(rounds):
            # "scan fused": SEQLAB_PREFIX_ATTN_SCAN_WALK=fused; "scan inline": SEQLAB_PREFIX_ATTN_SCAN_LSE=inline (with
            # the GPU's 32x128x2 value tile, which the inline pass takes at V = 64 as whole heads)
            for form in ("lookback", "scan", "scan fused", "scan inline"):
                os.environ["SEQLAB_PREFIX_ATTN_FWD"] = form.split()[0]
                os.environ["SEQLAB_PREFIX_ATTN_SCAN_WALK"] = "fused" if "fused" in form else "0"
                os.environ["SEQLAB_PREFIX_ATTN_SCAN_LSE"] = "inline" if "inline" in form else "chunks"
                os.environ["SEQLAB_PREFIX_ATTN_SCAN_CFG"] = "32,128,2"
                a = _us(lambda: prefix_attention(s, v, backend="triton"), n)
                b = _us(lambda: prefix_attention(sg, vg, backend="triton"), n)
                print(f"round {rnd + 1}  prefix_attention {form:10s}  {a:7.1f} us per fwd, {b:7.1f} with inputs "
                      "needing grad (B1 T64 H2 V64, kernels not launched)")
    finally:
        for (m, k), kern in saved.items():
            setattr(m, k, kern)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    sys.exit(main())
