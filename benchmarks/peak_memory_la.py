"""Peak GPU memory of linear-attention forward+backward: seqlab ``simple_gla`` / ``gla`` beside fla 0.6.0
``chunk_gla`` (issue 3's bar: simple_gla's fwd+bwd peak no higher than fla chunk_gla's), one process.

Each row: inputs (q, k, v, g with ``requires_grad``) and ``do`` allocated first, one warm-up call (compiles,
allocates the ``.grad`` buffers), then ``reset_peak_memory_stats`` and one more forward+backward; the row is
``max_memory_allocated`` minus the memory held before that call (inputs and their grads), i.e. what the op itself
adds. fla's autotuners are cut to their first config (tile configs do not change what is allocated; a full
autotune of chunk_gla's kernels takes minutes).

Usage (lent GPU): ``source benchmarks/device_env.sh && python3 benchmarks/peak_memory_la.py --json $OUT/mem.json``.
"""
from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

SHAPE = dict(B=4, T=4096, H=16, K=128, V=128)


def _inputs(B, T, H, K, V, vector_gate: bool):
    torch.manual_seed(0)
    q = torch.randn(B, T, H, K, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = F.normalize(torch.randn(B, T, H, K, device="cuda"), dim=-1).to(torch.bfloat16).requires_grad_()
    v = torch.randn(B, T, H, V, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    gs = (B, T, H, K) if vector_gate else (B, T, H)
    g = (F.logsigmoid(torch.randn(*gs, device="cuda")) / 16).requires_grad_()
    return q, k, v, g, torch.randn(B, T, H, V, device="cuda", dtype=torch.bfloat16)


def peak(fn, ins) -> float:
    """GiB the forward+backward of ``fn`` adds on top of what is allocated before it (after one warm-up)."""
    q, k, v, g, do = ins

    def once():
        o = fn(q, k, v, g)
        o = o[0] if isinstance(o, tuple) else o
        o.backward(do)
        del o

    once()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    once()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def main() -> None:
    from triton.runtime.autotuner import Autotuner
    prune = Autotuner.prune_configs
    Autotuner.prune_configs = lambda self, kw: prune(self, kw)[:1]
    from seqlab.kernels import gla, simple_gla
    rows = []
    tag = "B{B} T{T} H{H} K{K} V{V} bf16".format(**SHAPE)
    cases = [("seqlab simple_gla (triton)", False, lambda q, k, v, g: simple_gla(q, k, v, g, backend="triton")),
             ("seqlab gla (triton)", True, lambda q, k, v, g: gla(q, k, v, g, backend="triton"))]
    try:
        from fla.ops.gla import chunk_gla
        cases.append(("fla chunk_gla", True, lambda q, k, v, g: chunk_gla(q, k, v, g=g)))
    except ImportError as e:
        print(f"fla not importable ({e}): fla rows skipped", flush=True)
    for name, vec, fn in cases:
        try:
            ins = _inputs(**SHAPE, vector_gate=vec)
            gib = peak(fn, ins)
            rows.append(dict(name=f"{name} fwd+bwd {tag}", peak_GiB=round(gib, 4)))
            print(f"{name:52s} fwd+bwd peak {gib:7.3f} GiB", flush=True)
            del ins
        except Exception as e:  # one failing row must not hide the others
            rows.append(dict(name=f"{name} fwd+bwd {tag}", error=f"{type(e).__name__}: {str(e)[:300]}"))
            print(f"{name:52s} FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
        torch.cuda.empty_cache()
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), shape=SHAPE, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
