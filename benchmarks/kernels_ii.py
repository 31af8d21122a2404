"""Kernels II: bf16 correctness at the benchmark shape against the float32 chunked form, then timings of seqlab
gla / delta_rule / prefix_attention beside fla 0.6.0 (chunk_gla, chunk_delta_rule) and the device copy bandwidth.

Usage (lent GPU): ``source benchmarks/device_env.sh && python benchmarks/kernels_ii.py --json out.json``.
``--small`` runs tiny shapes in float32 on whatever device there is (on CPU: the Triton kernels under
``TRITON_INTERPRET=1``, peers skipped when not installed): a smoke test of this script, not a measurement.
``section_kernels_ii(ctx)`` is the entry point for the ``SECTIONS`` list of benchmarks/kernels.py (``ctx`` has
``rows``, ``bench(name, fn, bytes_moved=None)`` and ``ratio(name, ours, peer)``).
"""
from __future__ import annotations

import json
import os
import sys
import time

if "--small" in sys.argv and not __import__("torch").cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

FULL = dict(B=4, T=4096, H=16, K=128, V=128)
SMALL = dict(B=1, T=130, H=2, K=16, V=16)


def _rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def correctness(rows: list, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """Triton path (``dt``) vs the float32 chunked PyTorch form on the same inputs (outputs, state, grads)."""
    from seqlab.kernels import delta_rule, gla, prefix_attention
    torch.manual_seed(0)
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
            _compare(name, fn, ins, do, rows, f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}")
        except Exception as e:  # keep going: one failure must not hide the rest
            print(f"correctness {name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            rows.append(dict(name=f"correctness {name}", error=str(e)[:300]))
        if dev == "cuda":
            torch.cuda.empty_cache()


def _compare(name, fn, ins, do, rows, shape):
    res = []
    for be in ("torch", "triton"):
        xs = [(x.float() if be == "torch" else x).detach().clone().requires_grad_() for x in ins]
        o, st = fn(xs, be)
        (o.float() * do.float()).sum().backward()
        st = st[1] if isinstance(st, tuple) else st
        res.append([o, st] + [x.grad for x in xs])
        del o, st
    errs = {n: _rel(a, b) for n, a, b in zip(["o", "state"] + [f"d{i}" for i in range(len(ins))], res[1], res[0])}
    rows.append(dict(name=f"correctness {name} {shape}", **errs))
    print(f"correctness {name}: " + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)


def timings(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """Ours vs fla chunk_gla / chunk_delta_rule (fwd, fwd+bwd); prefix_attention vs copy bandwidth."""
    from seqlab.kernels import delta_rule, gla, prefix_attention
    try:
        from fla.ops.delta_rule import chunk_delta_rule
        from fla.ops.gla import chunk_gla
    except ImportError:
        chunk_gla = chunk_delta_rule = None
        print("fla not installed: peer rows skipped", flush=True)
    tag = f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}"
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
        ours = {"gla": f"gla {mode} seqlab.gla triton {tag}", "delta": f"delta {mode} seqlab.delta_rule triton {tag}"}
        peer = {"gla": f"gla {mode} fla.chunk_gla {tag}", "delta": f"delta {mode} fla.chunk_delta_rule {tag}"}
        ctx.bench(ours["gla"], run(lambda: gla(q, k, v, g_elem, backend="triton"), bwd))
        ctx.bench(ours["delta"], run(lambda: delta_rule(q, k, v, beta, backend="triton"), bwd))
        if chunk_gla is not None:
            ctx.bench(peer["gla"], run(lambda: chunk_gla(q, k, v, g=g_elem), bwd))
            ctx.bench(peer["delta"], run(lambda: chunk_delta_rule(q, k, v, beta), bwd))
            for op in ("gla", "delta"):
                ctx.ratio(f"{op} {mode} ours vs fla {tag}", ours[op], peer[op])
    n_copy = (1 << 28) if dev == "cuda" else (1 << 20)
    x = torch.randn(n_copy, device=dev)
    y = torch.empty_like(x)
    ctx.bench("limit: device copy (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    x = y = None  # free the copy buffers
    s = torch.randn(B, T, H, device=dev, requires_grad=True)
    nbytes = 2 * B * T * H * V * v.element_size() + B * T * H * 4 * 2  # read v, write o; read s, write lse
    ctx.bench(f"prefix_attention fwd seqlab triton {tag}", lambda: prefix_attention(s, v, backend="triton"), bytes_moved=nbytes)
    ctx.bench(f"prefix_attention fwd+bwd seqlab triton {tag}", run(lambda: prefix_attention(s, v, backend="triton"), True),
              bytes_moved=nbytes + 4 * B * T * H * V * v.element_size())


def section_kernels_ii(ctx) -> None:
    """benchmarks/kernels.py section: bf16 correctness and timings at B=4 T=4096 H=16 K=V=128."""
    correctness(ctx.rows, **FULL)
    timings(ctx, **FULL)


class _Ctx:
    """Rows plus ``bench`` / ``ratio`` (do_bench median on CUDA; a few wall-clock runs elsewhere)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def bench(self, name, fn, bytes_moved=None):
        try:
            if torch.cuda.is_available():
                from triton.testing import do_bench
                ms = do_bench(fn, warmup=10, rep=100, return_mode="median")
            else:
                fn()
                t0 = time.perf_counter()
                for _ in range(2):
                    fn()
                ms = (time.perf_counter() - t0) / 2 * 1e3
        except Exception as e:
            print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            self.rows.append(dict(name=name, error=str(e)[:300]))
            return None
        r = dict(name=name, ms=ms)
        if bytes_moved:
            r["GBps"] = bytes_moved / ms / 1e6
        self.rows.append(r)
        print(f"{name:62s} {ms:9.3f} ms" + (f" {r['GBps']:8.0f} GB/s" if bytes_moved else ""), flush=True)
        return ms

    def ratio(self, name, ours, peer):
        a = next((r["ms"] for r in self.rows if r.get("name") == ours and "ms" in r), None)
        b = next((r["ms"] for r in self.rows if r.get("name") == peer and "ms" in r), None)
        if a and b:
            self.rows.append(dict(name=name, ratio=b / a))
            print(f"    ratio {name}: {b / a:.3f}x (>1 means ours faster)", flush=True)


def main() -> None:
    import triton
    ctx = _Ctx()
    cuda = torch.cuda.is_available()
    print(torch.__version__, triton.__version__, torch.cuda.get_device_name() if cuda else "cpu", flush=True)
    if "--small" in sys.argv:
        dev = "cuda" if cuda else "cpu"
        correctness(ctx.rows, **SMALL, dev=dev, dt=torch.float32)
        timings(ctx, **SMALL, dev=dev, dt=torch.float32)
    else:
        section_kernels_ii(ctx)
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as fh:
            json.dump(dict(device=torch.cuda.get_device_name() if cuda else "cpu", rows=ctx.rows), fh, indent=1)


if __name__ == "__main__":
    main()
