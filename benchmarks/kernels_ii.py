"""Kernels II on a GPU: bf16 correctness at the benchmark shape against the float32 chunked form, then timings
of seqlab gla / delta_rule / prefix_attention beside fla 0.6.0 and the device copy bandwidth, in one process.

Usage (lent GPU): ``source benchmarks/device_env.sh && python benchmarks/kernels_ii.py --json out.json``.
``section_kernels_ii(bench, rows)`` is the entry point for the ``SECTIONS`` list of benchmarks/kernels.py.
"""
from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F


def _rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def correctness(rows: list, B=4, T=4096, H=16, K=128, V=128) -> None:
    """bf16 Triton path vs the float32 chunked PyTorch form on the same inputs (outputs, state, grads)."""
    from seqlab.kernels import delta_rule, gla, prefix_attention
    dev = "cuda"
    torch.manual_seed(0)
    dt = torch.bfloat16
    q = torch.randn(B, T, H, K, device=dev, dtype=dt)
    k = F.normalize(torch.randn(B, T, H, K, device=dev), dim=-1).to(dt)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    g_elem = F.logsigmoid(torch.randn(B, T, H, K, device=dev)) / 16
    g_head = F.logsigmoid(torch.randn(B, T, H, device=dev))
    beta = torch.rand(B, T, H, device=dev, dtype=dt)
    s = torch.randn(B, T, H, device=dev) * 30
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)
    cases = {
        "gla": (lambda xs, be: gla(*xs, output_final_state=True, backend=be), [q, k, v, g_elem]),
        "delta_rule": (lambda xs, be: delta_rule(*xs, output_final_state=True, backend=be), [q, k, v, beta]),
        "gated_delta_rule": (lambda xs, be: delta_rule(*xs, output_final_state=True, backend=be),
                             [q, k, v, beta, g_head]),
        "prefix_attention": (lambda xs, be: prefix_attention(*xs, output_final_state=True, backend=be), [s, v]),
    }
    for name, (fn, ins) in cases.items():
        try:
            _compare(name, fn, ins, do, rows, f"B{B} T{T} H{H} K{K} V{V}")
        except Exception as e:  # keep going: one failure must not hide the rest
            print(f"correctness {name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            rows.append(dict(name=f"correctness bf16 {name}", error=str(e)[:300]))
        torch.cuda.empty_cache()


def _compare(name, fn, ins, do, rows, shape):
    if True:
        res = []
        for be in ("torch", "triton"):
            xs = [(x.float() if be == "torch" else x).detach().clone().requires_grad_() for x in ins]
            o, st = fn(xs, be)
            (o.float() * do.float()).sum().backward()
            st = st[1] if isinstance(st, tuple) else st
            res.append([o, st] + [x.grad for x in xs])
            del o, st
        errs = {n: _rel(a, b) for n, a, b in zip(["o", "state"] + [f"d{i}" for i in range(len(ins))], res[1], res[0])}
        rows.append(dict(name=f"correctness bf16 {name} {shape}", **errs))
        print(f"correctness {name}: " + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)


def section_kernels_ii(bench, rows: list) -> None:
    """Timings: ours vs fla chunk_gla / chunk_delta_rule; prefix_attention vs copy bandwidth."""
    from fla.ops.delta_rule import chunk_delta_rule
    from fla.ops.gla import chunk_gla

    from seqlab.kernels import delta_rule, gla, prefix_attention
    dev = "cuda"
    B, T, H, K, V = 4, 4096, 16, 128, 128
    dt = torch.bfloat16
    tag = f"B{B} T{T} H{H} K{K} V{V} bf16"
    q = torch.randn(B, T, H, K, device=dev, dtype=dt, requires_grad=True)
    k = F.normalize(torch.randn(B, T, H, K, device=dev, dtype=dt), dim=-1).requires_grad_()
    v = torch.randn(B, T, H, V, device=dev, dtype=dt, requires_grad=True)
    g_elem = (F.logsigmoid(torch.randn(B, T, H, K, device=dev)) / 16).requires_grad_()
    beta = torch.rand(B, T, H, device=dev, dtype=dt).requires_grad_()
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)

    def run(fn, bwd):
        def f():
            o = fn()[0]
            if bwd:
                o.backward(do)
        return f

    for bwd in (False, True):
        mode = "fwd+bwd" if bwd else "fwd"
        bench(f"gla {mode} fla.chunk_gla {tag}", run(lambda: chunk_gla(q, k, v, g=g_elem), bwd))
        bench(f"gla {mode} seqlab.gla triton {tag}", run(lambda: gla(q, k, v, g_elem), bwd))
        bench(f"delta {mode} fla.chunk_delta_rule {tag}", run(lambda: chunk_delta_rule(q, k, v, beta), bwd))
        bench(f"delta {mode} seqlab.delta_rule triton {tag}", run(lambda: delta_rule(q, k, v, beta), bwd))
    x = torch.randn(1 << 28, device=dev)
    y = torch.empty_like(x)
    bench("limit: device copy 1GiB (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    del x, y
    s = torch.randn(B, T, H, device=dev, requires_grad=True)
    nbytes = 2 * B * T * H * V * 2 + B * T * H * 4 * 2  # read v, write o (bf16); read s, write lse (fp32)
    bench(f"prefix_attention fwd seqlab triton {tag}", lambda: prefix_attention(s, v), bytes_moved=nbytes)
    bench(f"prefix_attention fwd+bwd seqlab triton {tag}", run(lambda: prefix_attention(s, v), True),
          bytes_moved=nbytes + 4 * B * T * H * V * 2)


def _prefix_only(bench) -> None:
    from seqlab.kernels import prefix_attention
    B, T, H, V = 4, 4096, 16, 128
    s = torch.randn(B, T, H, device="cuda") * 30
    v = torch.randn(B, T, H, V, device="cuda", dtype=torch.bfloat16)
    o, _ = prefix_attention(s, v)
    ref, _ = prefix_attention(s, v.float(), backend="torch")
    print(f"correctness prefix_attention o={_rel(o, ref):.2e}", flush=True)
    x = torch.randn(1 << 28, device="cuda")
    y = torch.empty_like(x)
    bench("limit: device copy 1GiB (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    nbytes = 2 * B * T * H * V * 2 + B * T * H * 4 * 2
    bench("prefix_attention fwd seqlab triton BV=16", lambda: prefix_attention(s, v), bytes_moved=nbytes)


def main() -> None:
    import triton
    from triton.testing import do_bench
    rows: list = []

    def bench(name, fn, bytes_moved=None):
        try:
            ms = do_bench(fn, warmup=10, rep=100, return_mode="median")
        except Exception as e:
            print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            rows.append(dict(name=name, error=str(e)[:300]))
            return
        r = dict(name=name, ms=ms)
        if bytes_moved:
            r["GBps"] = bytes_moved / ms / 1e6
        rows.append(r)
        print(f"{name:60s} {ms:9.3f} ms" + (f" {r['GBps']:8.0f} GB/s" if bytes_moved else ""), flush=True)

    print(torch.__version__, triton.__version__, torch.cuda.get_device_name(), flush=True)
    if "--prefix-only" in sys.argv:
        _prefix_only(bench)
        return
    correctness(rows)
    section_kernels_ii(bench, rows)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as fh:
            json.dump(dict(device=torch.cuda.get_device_name(), rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
