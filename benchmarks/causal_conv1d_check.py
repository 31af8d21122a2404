"""GPU check and timing of ``seqlab.kernels.causal_conv1d`` (Triton) against its PyTorch form (``F.conv1d``) at a
layer's shape (B=8 T=4096 C=1024 W=4, SiLU, bf16 activations, float32 weights): rel-RMS of y, new cache and every
gradient against the float32 PyTorch form, then fwd / fwd+bwd ms of both (``triton.testing.do_bench``).

Usage (lent GPU): ``source benchmarks/device_env.sh && python3 benchmarks/causal_conv1d_check.py``.
"""
from __future__ import annotations

import torch
import triton
from seqlab.kernels import causal_conv1d


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main(B=8, T=4096, C=1024, W=4) -> None:
    torch.manual_seed(0)
    x = torch.randn(B, T, C, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(C, W, device="cuda") * 0.5
    b = torch.randn(C, device="cuda") * 0.1
    cache = torch.randn(B, W - 1, C, device="cuda", dtype=torch.bfloat16)
    dy = torch.randn(B, T, C, device="cuda", dtype=torch.bfloat16)
    res = {}
    for be, dt in (("torch", torch.float32), ("triton", torch.bfloat16)):
        xs = [t.detach().to(dt if t.dtype == torch.bfloat16 else t.dtype).clone().requires_grad_()
              for t in (x, w, b, cache)]
        y, nc = causal_conv1d(xs[0], xs[1], xs[2], activation="silu", cache=xs[3], backend=be)
        grads = torch.autograd.grad((y.float() * dy.float()).sum() + nc.float().sum(), xs)
        res[be] = [y, nc] + list(grads)
    names = ["y", "new_cache", "dx", "dw", "db", "dcache"]
    print("causal_conv1d bf16 triton vs float32 torch: "
          + " ".join(f"{n}={_rel(a, b):.2e}" for n, a, b in zip(names, res["triton"], res["torch"])), flush=True)
    xg = x.clone().requires_grad_()
    for be in ("triton", "torch"):
        f = lambda: causal_conv1d(xg, w, b, activation="silu", backend=be)[0]  # noqa: E731
        fb = lambda: f().backward(dy)  # noqa: E731
        ms_f, ms_fb = triton.testing.do_bench(f), triton.testing.do_bench(fb)
        gbs = 2 * x.numel() * 2 / ms_f / 1e6
        print(f"causal_conv1d {be:6s} B{B} T{T} C{C} W{W} bf16: fwd {ms_f:.3f} ms ({gbs:.0f} GB/s) "
              f"fwd+bwd {ms_fb:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
