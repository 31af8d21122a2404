"""Localise a GPU fault of seqlab's delta_rule Triton path: each case runs in its own subprocess with
``CUDA_LAUNCH_BLOCKING=1``, so a fault ends only that case and is reported at the launch that made it.

Usage (lent GPU): ``source benchmarks/device_env.sh && python3 benchmarks/delta_rule_probe.py [--round2] [--json out.json]``.
Cases at B=4 T=4096 H=16 K=V=128 bf16 (``--shape B,T,H,K,V`` to change): the plain forward+backward, then with
``initial_state``, with ``output_final_state``, both, both plus a final-state gradient, the gated form with
everything, and the float32 PyTorch chunked reference alone. Prints one line per case: ok (with the relative
error of o and the final state against the float32 reference where both ran) or the error's last lines.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CASES = ("plain", "h0", "final", "h0+final", "h0+final+dht", "gated+h0+final+dht", "torch_ref")
# second round (after the first localised the fault to the ungated "h0+final+dht" case): repeat it, drop h0,
# pass an explicit zero final-state gradient, and check each backward kernel with a sync after it
CASES_2 = ("h0+final+dht", "final+dht", "h0+final+dht0", "h0+final+dht+sync", "final+dht+sync")


def _case(name: str, B: int, T: int, H: int, K: int, V: int) -> None:
    import torch
    import torch.nn.functional as F
    from seqlab.kernels import delta_rule
    torch.manual_seed(1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a smoke test under TRITON_INTERPRET=1
    dt = torch.bfloat16 if dev == "cuda" else torch.float32
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    q = torch.randn(B, T, H, K, device=dev, dtype=dt)
    k = F.normalize(torch.randn(B, T, H, K, device=dev), dim=-1).to(dt)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    beta = torch.rand(B, T, H, device=dev, dtype=dt)
    g = F.logsigmoid(torch.randn(B, T, H, device=dev)) if name.startswith("gated") else None
    h0 = torch.randn(B, H, K, V, device=dev) if "h0" in name or name == "torch_ref" else None
    final = "final" in name or name == "torch_ref"
    be = "torch" if name == "torch_ref" else "triton"
    to32 = be == "torch"
    xs = [(x.float() if to32 else x).detach().clone().requires_grad_() for x in (q, k, v, beta)]
    gx = g.detach().clone().requires_grad_() if g is not None else None
    hx = h0.detach().clone().requires_grad_() if h0 is not None else None
    o, ht = delta_rule(*xs, gx, initial_state=hx, output_final_state=final, backend=be)
    sync()
    print(f"forward done: o {tuple(o.shape)} finite={bool(o.float().isfinite().all())}", flush=True)
    loss = (o.float() * torch.randn_like(o, dtype=torch.float32)).sum()
    if "dht0" in name:
        loss = loss + (ht * torch.zeros_like(ht)).sum()
    elif "dht" in name or name == "torch_ref":
        loss = loss + (ht * torch.randn_like(ht)).sum()
    if "sync" in name:  # name the faulting kernel: synchronise after every launch of the backward
        from seqlab.kernels.delta_rule import triton_chunk as tc
        for kname in [n for n in dir(tc) if n.startswith("_") and n.endswith("_kernel")]:
            kern = getattr(tc, kname)

            class _Sync:
                def __init__(self, kern, kname):
                    self.kern, self.kname = kern, kname

                def __getitem__(self, grid):
                    def launch(*a, **kw):
                        self.kern[grid](*a, **kw)
                        try:
                            sync()
                        except Exception as e:
                            raise RuntimeError(f"fault in {self.kname} grid={grid}") from e
                        print(f"  ok {self.kname} grid={grid}", flush=True)
                    return launch
            setattr(tc, kname, _Sync(kern, kname))
    leaves = xs + [x for x in (gx, hx) if x is not None]
    grads = torch.autograd.grad(loss, leaves)
    sync()
    print("backward done: grads finite=" + str(all(bool(gr.float().isfinite().all()) for gr in grads)), flush=True)


def main() -> None:
    shape = (4, 4096, 16, 128, 128)
    if "--shape" in sys.argv:
        shape = tuple(int(s) for s in sys.argv[sys.argv.index("--shape") + 1].split(","))
    if "--case" in sys.argv:
        _case(sys.argv[sys.argv.index("--case") + 1], *shape)
        return
    rows = []
    env = dict(os.environ, CUDA_LAUNCH_BLOCKING="1")
    for name in CASES_2 if "--round2" in sys.argv else CASES:
        t0 = time.time()
        p = subprocess.run([sys.executable, __file__, "--case", name, "--shape", ",".join(map(str, shape))],
                           env=env, capture_output=True, text=True, timeout=300)
        tail = (p.stdout.strip().splitlines()[-12:] + [ln for ln in p.stderr.splitlines()
                                                         if "Error" in ln or "fault" in ln or "line" in ln][-12:])
        rows.append(dict(case=name, rc=p.returncode, seconds=round(time.time() - t0, 1), tail=tail))
        print(f"{name:22s} rc={p.returncode} {time.time() - t0:6.1f} s", flush=True)
        for line in tail:
            print(f"    {line}", flush=True)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(dict(shape=shape, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
