"""GPU benchmark of seqlab.kernels against the peers a user would pick, on the same shapes in one process.

Sections (``SECTIONS``; another op adds a function ``section_xxx(ctx)`` and appends it):
  limits      device copy bandwidth (4 GiB, read + write) and bf16 matmul rate: the ceilings.
  correct     bf16 / fp32 correctness of our Triton kernels at the benchmark shapes against an fp32 oracle.
  scan1       ours (a / log_a, h0, varlen) vs accelerated-scan 0.3.1 ``scalar.scan`` and fla ``chunk_hgrn``.
  simple_gla  ours (chunk, fwd / fwd+bwd, peak memory) vs fla ``chunk_simple_gla`` / ``chunk_gla`` and SDPA.
  kernels_ii  gla / delta_rule vs fla ``chunk_gla`` / ``chunk_delta_rule``; prefix_attention GB/s (kernels_ii.py).

Timing: median of ``triton.testing.do_bench`` (as in ../shared/benchmarks/peers_gpu.py). Prints one table;
``--json PATH`` writes all rows; ``--only a,b`` runs some sections. Needs CUDA and the peers
(``source benchmarks/device_env.sh`` on the lent machine installs them from .whl/).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F


class Ctx:
    """Rows collected so far plus the ``bench`` helper shared by every section."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.dev = "cuda"

    def add(self, **row) -> None:
        self.rows.append(row)
        name = row.get("name", "")
        parts = [f"{name:62s}"]
        for key, fmt in (("ms", "{:9.3f} ms"), ("GBps", "{:7.0f} GB/s"), ("TFLOPs", "{:6.1f} TFLOP/s"),
                         ("peak_GiB", "{:6.2f} GiB"), ("rel_rmse", "rel-RMS {:.2e}"), ("ok", "ok={}"),
                         ("error", "FAILED {}")):
            if key in row:
                parts.append(fmt.format(row[key] if key != "error" else str(row[key])[:120]))
        print("  ".join(parts), flush=True)

    def bench(self, name: str, fn: Callable[[], object], bytes_moved: float | None = None,
              flops: float | None = None, peak: bool = False, **meta) -> float | None:
        from triton.testing import do_bench

        try:
            ms = do_bench(fn, warmup=50, rep=300, return_mode="median")
            row = dict(name=name, ms=ms, **meta)
            if bytes_moved:
                row["GBps"] = bytes_moved / ms / 1e6
            if flops:
                row["TFLOPs"] = flops / ms / 1e9
            if peak:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                fn()
                torch.cuda.synchronize()
                row["peak_GiB"] = (torch.cuda.max_memory_allocated() - base) / 2**30
        except Exception as e:  # one failure must not hide the rest
            self.add(name=name, error=f"{type(e).__name__}: {e}"[:300], **meta)
            return None
        self.add(**row)
        return ms

    def ms(self, name: str) -> float | None:
        return next((r["ms"] for r in self.rows if r.get("name") == name and "ms" in r), None)

    def ratio(self, name: str, num: str, den: str) -> None:
        a, b = self.ms(num), self.ms(den)
        if a and b:
            self.add(name=name, ratio=b / a, ms=a)
            print(f"    ratio {name}: {b / a:.3f}x (>1 means ours faster)", flush=True)


def rel_rmse(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.double(), ref.double()
    return ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


# ------------------------------------------------------------------------------------------------ limits
def section_limits(ctx: Ctx) -> None:
    x = torch.randn(1 << 30, device=ctx.dev)
    y = torch.empty_like(x)
    ctx.bench("limit: device copy 4GiB (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    del x, y
    a = torch.randn(8192, 8192, device=ctx.dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=ctx.dev, dtype=torch.bfloat16)
    ctx.bench("limit: bf16 matmul 8192^3", lambda: a @ b, flops=2 * 8192**3)
    del a, b
    torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ correctness
def _grads(fn, leaves, weights):
    leaves = [x.detach().clone().requires_grad_() for x in leaves]
    out, st = fn(*leaves)
    loss = (out.float() * weights).sum() + (st.float() * 0.01).sum()
    return [out.detach(), st.detach(), *torch.autograd.grad(loss, leaves)]


def section_correct(ctx: Ctx) -> None:
    from seqlab.kernels import scan1, simple_gla
    from seqlab.kernels.scan1 import scan1_chunked
    from seqlab.kernels.simple_gla import simple_gla_chunked

    B, T, D = 8, 8192, 1024
    tol = {torch.float32: 1e-4, torch.bfloat16: 2e-2}
    for dt in (torch.float32, torch.bfloat16):
        la = F.logsigmoid(torch.randn(B, T, D, device=ctx.dev) + 3)
        b = torch.randn(B, T, D, device=ctx.dev)
        h0 = torch.randn(B, D, device=ctx.dev)
        w = torch.randn(B, T, D, device=ctx.dev)
        ours = _grads(lambda la_, b_, h0_: scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True),
                      [la.to(dt), b.to(dt), h0], w)
        ref = _grads(lambda la_, b_, h0_: scan1_chunked(la_.exp(), b_, h0_), [la.to(dt).float(), b.to(dt).float(), h0], w)
        for name, x, r in zip(["h", "hT", "dlog_a", "db", "dh0"], ours, ref):
            e = rel_rmse(x, r)
            ctx.add(name=f"correct scan1 {str(dt)[6:]} B{B} T{T} D{D} {name}", rel_rmse=e, ok=e < tol[dt])
        del la, b, h0, w, ours, ref
    torch.cuda.empty_cache()

    B, T, H, K, V = 4, 4096, 16, 128, 128
    tol = {torch.float32: 1e-3, torch.bfloat16: 3e-2}
    for dt in (torch.bfloat16, torch.float32):
        q = torch.randn(B, T, H, K, device=ctx.dev)
        k = F.normalize(torch.randn(B, T, H, K, device=ctx.dev), dim=-1)
        v = torch.randn(B, T, H, V, device=ctx.dev)
        g = F.logsigmoid(torch.randn(B, T, H, device=ctx.dev))
        h0 = torch.randn(B, H, K, V, device=ctx.dev)
        w = torch.randn(B, T, H, V, device=ctx.dev)
        inputs = [q.to(dt), k.to(dt), v.to(dt), g, h0]
        ours = _grads(lambda *a: simple_gla(*a[:4], initial_state=a[4], output_final_state=True), inputs, w)
        ref = _grads(lambda *a: simple_gla_chunked(*a[:4], K**-0.5, a[4]), [x.float() for x in inputs], w)
        for name, x, r in zip(["o", "hT", "dq", "dk", "dv", "dg", "dh0"], ours, ref):
            e = rel_rmse(x, r)
            ctx.add(name=f"correct simple_gla chunk {str(dt)[6:]} B{B} T{T} H{H} K{K} {name}", rel_rmse=e,
                    ok=e < tol[dt])
        del ours, ref
        o_fr, _ = simple_gla(*inputs[:4], mode="fused_recurrent")
        o_ref, _ = simple_gla_chunked(*[x.float() for x in inputs[:4]], K**-0.5)
        e = rel_rmse(o_fr, o_ref)
        ctx.add(name=f"correct simple_gla fused_recurrent {str(dt)[6:]} o", rel_rmse=e, ok=e < tol[dt])
    torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ scan1
def section_scan1(ctx: Ctx) -> None:
    from accelerated_scan.scalar import scan as acc_scan
    from fla.ops.hgrn import chunk_hgrn

    from seqlab.kernels import scan1

    B, T, D = 8, 8192, 1024
    n = B * T * D
    for dt in (torch.float32, torch.bfloat16):
        es = torch.tensor([], dtype=dt).element_size()
        tag = f"B{B} T{T} D{D} {str(dt)[6:]}"
        xs = torch.randn(B, T, D, device=ctx.dev, dtype=dt)
        gs = F.logsigmoid(torch.randn(B, T, D, device=ctx.dev)).to(dt)
        a_lin = gs.exp()
        h0 = torch.randn(B, D, device=ctx.dev)
        cu = torch.arange(0, B * T + 1, T, device=ctx.dev, dtype=torch.int32)
        xv, gv = xs.reshape(1, B * T, D), gs.reshape(1, B * T, D)
        f3, f8 = 3 * n * es, 8 * n * es
        ctx.bench(f"scan fwd ours log_a {tag}", lambda: scan1(None, xs, log_a=gs), bytes_moved=f3)
        ctx.bench(f"scan fwd ours a {tag}", lambda: scan1(a_lin, xs), bytes_moved=f3)
        ctx.bench(f"scan fwd ours log_a+h0 {tag}", lambda: scan1(None, xs, log_a=gs, initial_state=h0), bytes_moved=f3)
        ctx.bench(f"scan fwd ours log_a varlen(8x{T}) {tag}", lambda: scan1(None, xv, log_a=gv, cu_seqlens=cu),
                  bytes_moved=f3)
        ctx.bench(f"scan fwd fla.chunk_hgrn {tag}", lambda: chunk_hgrn(xs, gs), bytes_moved=f3)
        xa = xs.transpose(1, 2).contiguous()
        fa = a_lin.transpose(1, 2).contiguous()
        ctx.bench(f"scan fwd accelerated_scan.scalar {tag}", lambda: acc_scan(fa, xa), bytes_moved=f3)

        do = torch.randn_like(xs)
        xr, gr, ar = (t.clone().requires_grad_() for t in (xs, gs, a_lin))
        h0r = h0.clone().requires_grad_()
        xvr, gvr = xr.detach().reshape(1, B * T, D).requires_grad_(), gr.detach().reshape(1, B * T, D).requires_grad_()
        dov = do.reshape(1, B * T, D)
        ctx.bench(f"scan fwd+bwd ours log_a {tag}", lambda: scan1(None, xr, log_a=gr)[0].backward(do), bytes_moved=f8)
        ctx.bench(f"scan fwd+bwd ours a {tag}", lambda: scan1(ar, xr)[0].backward(do), bytes_moved=f8)
        ctx.bench(f"scan fwd+bwd ours log_a+h0 {tag}",
                  lambda: scan1(None, xr, log_a=gr, initial_state=h0r)[0].backward(do), bytes_moved=f8)
        ctx.bench(f"scan fwd+bwd ours log_a varlen(8x{T}) {tag}",
                  lambda: scan1(None, xvr, log_a=gvr, cu_seqlens=cu)[0].backward(dov), bytes_moved=f8)
        ctx.bench(f"scan fwd+bwd fla.chunk_hgrn {tag}", lambda: chunk_hgrn(xr, gr)[0].backward(do), bytes_moved=f8)
        xar, far = xa.clone().requires_grad_(), fa.clone().requires_grad_()
        doa = do.transpose(1, 2).contiguous()
        ctx.bench(f"scan fwd+bwd accelerated_scan.scalar {tag}", lambda: acc_scan(far, xar).backward(doa),
                  bytes_moved=f8)
        for mode in ("fwd", "fwd+bwd"):
            ctx.ratio(f"scan {mode} ours(log_a) vs accelerated_scan {tag}", f"scan {mode} ours log_a {tag}",
                      f"scan {mode} accelerated_scan.scalar {tag}")
            ctx.ratio(f"scan {mode} ours(a) vs accelerated_scan {tag}", f"scan {mode} ours a {tag}",
                      f"scan {mode} accelerated_scan.scalar {tag}")
            ctx.ratio(f"scan {mode} ours(log_a) vs fla.chunk_hgrn {tag}", f"scan {mode} ours log_a {tag}",
                      f"scan {mode} fla.chunk_hgrn {tag}")
        copy = ctx.ms("limit: device copy 4GiB (read+write)")
        ours = ctx.ms(f"scan fwd ours log_a {tag}")
        if copy and ours:
            copy_gbps = 2 * (1 << 30) * 4 / copy / 1e6
            frac = (f3 / ours / 1e6) / copy_gbps
            ctx.add(name=f"scan fwd ours log_a {tag} fraction of copy bandwidth", ratio=frac, ms=ours)
            print(f"    fraction of copy bandwidth: {frac:.3f}", flush=True)
        del xs, gs, a_lin, xa, fa, xr, gr, ar, xar, far, do, doa, xvr, gvr
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ simple_gla
def section_simple_gla(ctx: Ctx) -> None:
    from fla.ops.gla import chunk_gla
    from fla.ops.simple_gla import chunk_simple_gla

    from seqlab.kernels import simple_gla

    B, T, H, K, V = 4, 4096, 16, 128, 128
    dt = torch.bfloat16
    tag = f"B{B} T{T} H{H} K{K} V{V} bf16"
    q = torch.randn(B, T, H, K, device=ctx.dev, dtype=dt, requires_grad=True)
    k = F.normalize(torch.randn(B, T, H, K, device=ctx.dev, dtype=dt), dim=-1).requires_grad_()
    v = torch.randn(B, T, H, V, device=ctx.dev, dtype=dt, requires_grad=True)
    g = F.logsigmoid(torch.randn(B, T, H, device=ctx.dev)).requires_grad_()
    g_elem = (F.logsigmoid(torch.randn(B, T, H, K, device=ctx.dev)) / 16).requires_grad_()
    do = torch.randn(B, T, H, V, device=ctx.dev, dtype=dt)
    C = 64
    flops = B * H * (2 * T * C * (K + V) + 4 * T * K * V)

    def run(fn, bwd):
        def f():
            o = fn()
            o = o[0] if isinstance(o, tuple) else o
            if bwd:
                o.backward(do)
        return f

    for bwd in (False, True):
        mode, mult = ("fwd+bwd", 3) if bwd else ("fwd", 1)
        ctx.bench(f"la {mode} ours simple_gla chunk {tag}", run(lambda: simple_gla(q, k, v, g), bwd),
                  flops=mult * flops, peak=bwd)
        ctx.bench(f"la {mode} fla.chunk_simple_gla {tag}", run(lambda: chunk_simple_gla(q, k, v, g=g), bwd),
                  flops=mult * flops, peak=bwd)
        ctx.bench(f"la {mode} fla.chunk_gla {tag}", run(lambda: chunk_gla(q, k, v, g=g_elem), bwd),
                  flops=mult * flops, peak=bwd)
        qs, ks, vs = (t.transpose(1, 2) for t in (q, k, v))
        sdpa = (lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True).backward(do.transpose(1, 2))) \
            if bwd else (lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True))
        ctx.bench(f"attn {mode} torch SDPA causal (flash) {tag}", sdpa, flops=mult * B * H * 2 * T * T * (K + V) / 2,
                  peak=bwd)
        ctx.ratio(f"la {mode} ours vs fla.chunk_simple_gla {tag}", f"la {mode} ours simple_gla chunk {tag}",
                  f"la {mode} fla.chunk_simple_gla {tag}")
        ctx.ratio(f"la {mode} ours vs SDPA {tag}", f"la {mode} ours simple_gla chunk {tag}",
                  f"attn {mode} torch SDPA causal (flash) {tag}")
    del q, k, v, g, g_elem, do
    torch.cuda.empty_cache()
    for T2 in (16384, 65536):
        B2 = max(1, 4 * 4096 // T2)
        q2 = torch.randn(B2, T2, H, K, device=ctx.dev, dtype=dt)
        k2 = F.normalize(torch.randn(B2, T2, H, K, device=ctx.dev, dtype=dt), dim=-1)
        v2 = torch.randn(B2, T2, H, V, device=ctx.dev, dtype=dt)
        g2 = F.logsigmoid(torch.randn(B2, T2, H, device=ctx.dev))
        tg = f"B{B2} T{T2} H{H} K{K} V{V} bf16"
        ctx.bench(f"la fwd ours simple_gla chunk {tg}", lambda: simple_gla(q2, k2, v2, g2))
        ctx.bench(f"la fwd fla.chunk_simple_gla {tg}", lambda: chunk_simple_gla(q2, k2, v2, g=g2))
        ctx.bench(f"attn fwd torch SDPA causal (flash) {tg}",
                  lambda: F.scaled_dot_product_attention(q2.transpose(1, 2), k2.transpose(1, 2), v2.transpose(1, 2),
                                                         is_causal=True))
        ctx.ratio(f"la fwd ours vs SDPA {tg}", f"la fwd ours simple_gla chunk {tg}",
                  f"attn fwd torch SDPA causal (flash) {tg}")
        ctx.ratio(f"la fwd ours vs fla.chunk_simple_gla {tg}", f"la fwd ours simple_gla chunk {tg}",
                  f"la fwd fla.chunk_simple_gla {tg}")
        del q2, k2, v2, g2
        torch.cuda.empty_cache()


def section_kernels_ii(ctx: Ctx) -> None:
    """gla / delta_rule / prefix_attention: bf16 correctness and timings vs fla (benchmarks/kernels_ii.py)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("seqlab_bench_kernels_ii", Path(__file__).with_name("kernels_ii.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.section_kernels_ii(ctx)


SECTIONS: list[Callable[[Ctx], None]] = [section_limits, section_correct, section_scan1, section_simple_gla,
                                         section_kernels_ii]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write all rows to this JSON file")
    ap.add_argument("--only", help="comma-separated section names (limits,correct,scan1,simple_gla,kernels_ii)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/kernels.py needs a CUDA device", file=sys.stderr)
        return 2
    import triton

    ctx = Ctx()
    print(torch.__version__, triton.__version__, torch.cuda.get_device_name(), flush=True)
    wanted = set(args.only.split(",")) if args.only else None
    for section in SECTIONS:
        name = section.__name__.removeprefix("section_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        try:
            section(ctx)
        except Exception as e:  # keep the other sections' rows
            ctx.add(name=f"section {name}", error=f"{type(e).__name__}: {e}")
        if args.json:  # write after every section: a timeout keeps what was measured
            with open(args.json, "w") as fh:
                json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                               triton=triton.__version__, rows=ctx.rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
