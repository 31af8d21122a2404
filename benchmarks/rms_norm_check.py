"""GPU check and timing of ``seqlab.kernels.rms_norm`` (Triton) against its PyTorch form, before it becomes the
default of ``core.layers.RMSNorm`` / ``GatedRMSNorm`` on CUDA (opt-in ``SEQLAB_FUSED_NORM=1`` until then).

At a layer's shape (rows B*T = 32,768, D = 1024 and 2048, bf16 activations, float32 weight), for plain RMSNorm and
both gated orders: rel-RMS of y and every gradient against the float32 PyTorch form, then fwd / fwd+bwd ms of both
(``triton.testing.do_bench``). Usage (lent GPU): ``source benchmarks/device_env.sh && python3
benchmarks/rms_norm_check.py``.
"""
from __future__ import annotations

import torch
import triton
from seqlab.kernels import rms_norm


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main(rows: int = 32768) -> None:
    for D in (1024, 2048):
        for mode in ("plain", "gate after norm", "gate before norm"):
            torch.manual_seed(0)
            x = torch.randn(rows, D, device="cuda", dtype=torch.bfloat16)
            z = torch.randn_like(x) if mode != "plain" else None
            w = torch.rand(D, device="cuda") + 0.5
            dy = torch.randn_like(x)
            nbg = mode == "gate after norm"
            res = {}
            for be, dt in (("torch", torch.float32), ("triton", torch.bfloat16)):
                xs = [t.detach().to(dt).clone().requires_grad_() for t in (x, z) if t is not None]
                wl = w.detach().clone().requires_grad_()
                y = rms_norm(xs[0], wl, xs[1] if z is not None else None, norm_before_gate=nbg, backend=be)
                res[be] = [y] + list(torch.autograd.grad((y.float() * dy.float()).sum(), xs + [wl]))
            names = ["y", "dx"] + (["dz"] if z is not None else []) + ["dw"]
            print(f"rms_norm {mode:17s} D{D} bf16 triton vs fp32 torch: "
                  + " ".join(f"{n}={_rel(a, b):.2e}" for n, a, b in zip(names, res["triton"], res["torch"])),
                  flush=True)
            xg = x.clone().requires_grad_()
            for be in ("triton", "torch"):
                f = lambda: rms_norm(xg, w, z, norm_before_gate=nbg, backend=be)  # noqa: E731
                fb = lambda: f().backward(dy)  # noqa: E731
                print(f"    {be:6s} fwd {triton.testing.do_bench(f):.3f} ms  fwd+bwd {triton.testing.do_bench(fb):.3f} ms",
                      flush=True)


if __name__ == "__main__":
    main()
