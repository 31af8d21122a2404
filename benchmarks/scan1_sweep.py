"""Tile sweep and GPU correctness of the single-pass scan1 kernels, beside the peers, in one process.

For each dtype at B=8 T=8192 D=1024: correctness of ours (log_a + h0 + final state, all grads; and varlen
+ reverse) against the fp32 chunked PyTorch form, then forward and forward+backward ms for every tile
config ``(CT, BD, num_warps)`` (``SEQLAB_SCAN1_CFG``), the default config, accelerated-scan 0.3.1 and fla
``chunk_hgrn``, and the device copy bandwidth. Forward+backward rows take the gradients with
``torch.autograd.grad`` for every kernel, so no ``.grad`` accumulation into the leaves is timed (until the fifth
session of 2026-12-03 it was, for ours and the peers alike: ~0.18 ms per step in bf16 at this shape). Prints a
table; ``--json PATH`` writes the rows.

    source benchmarks/device_env.sh && python benchmarks/scan1_sweep.py --json /tmp/scan1.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F


def _load_kernels_bench():
    """benchmarks/kernels.py under its own module name (a bare ``kernels`` is Hugging Face's package's name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_kernels", os.path.join(os.path.dirname(__file__),
                                                                                "kernels.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_kernels"] = mod
    spec.loader.exec_module(mod)
    return mod


_kb = _load_kernels_bench()
Ctx, rel_rmse = _kb.Ctx, _kb.rel_rmse

CONFIGS = [(ct, bd, w) for ct, bd in ((32, 64), (64, 64), (128, 64), (256, 32), (64, 128), (128, 128),
                                      (32, 128), (256, 64), (512, 16))
           for w in (4, 8)]


def _grads(fn, leaves, w):
    leaves = [x.detach().clone().requires_grad_() for x in leaves]
    h, ht = fn(*leaves)
    loss = (h.float() * w).sum() + (ht.float() * 0.01).sum()
    return [h.detach(), ht.detach(), *torch.autograd.grad(loss, leaves)]


def correctness(ctx: Ctx, dt: torch.dtype, B: int, T: int, D: int, tag: str = "") -> None:
    from seqlab.kernels import scan1
    from seqlab.kernels.scan1 import scan1_chunked

    tol = 1e-4 if dt == torch.float32 else 2e-2
    la = F.logsigmoid(torch.randn(B, T, D, device=ctx.dev) + 3).to(dt)
    b = torch.randn(B, T, D, device=ctx.dev).to(dt)
    h0 = torch.randn(B, D, device=ctx.dev)
    w = torch.randn(B, T, D, device=ctx.dev)
    for reverse in (False, True):
        ours = _grads(lambda la_, b_, h0_: scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True,
                                                 reverse=reverse), [la, b, h0], w)
        ref = _grads(lambda la_, b_, h0_: scan1_chunked(la_.exp(), b_, h0_, reverse),
                     [la.float(), b.float(), h0], w)
        for name, x, r in zip(["h", "hT", "dlog_a", "db", "dh0"], ours, ref):
            e = rel_rmse(x, r)
            ctx.add(name=f"correct scan1{tag} {str(dt)[6:]} rev={reverse} {name}", rel_rmse=e, ok=e < tol)
    # varlen: uneven packed lengths, h0 per sequence, against the per-sequence PyTorch form
    lens = [1, 4000, 37, 8192 * 3, 5, 12000]
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), device=ctx.dev, dtype=torch.int32)
    Tv = sum(lens)
    lav = F.logsigmoid(torch.randn(1, Tv, D, device=ctx.dev) + 3).to(dt)
    bv = torch.randn(1, Tv, D, device=ctx.dev).to(dt)
    h0v = torch.randn(len(lens), D, device=ctx.dev)
    wv = torch.randn(1, Tv, D, device=ctx.dev)
    for reverse in (False, True):
        ours = _grads(lambda la_, b_, h0_: scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True,
                                                 cu_seqlens=cu, reverse=reverse), [lav, bv, h0v], wv)
        ref = _grads(lambda la_, b_, h0_: scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True,
                                                cu_seqlens=cu, reverse=reverse, backend="torch"),
                     [lav.float(), bv.float(), h0v], wv)
        for name, x, r in zip(["h", "hT", "dlog_a", "db", "dh0"], ours, ref):
            e = rel_rmse(x, r)
            ctx.add(name=f"correct scan1{tag} varlen {str(dt)[6:]} rev={reverse} {name}", rel_rmse=e, ok=e < tol)
    torch.cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--configs", help="semicolon list of CT,BD,num_warps tiles instead of the built-in sweep, "
                    "e.g. '64,32,1;64,64,2' (1-2 warps keep each channel's time steps in one thread); "
                    "'@NAME=V' suffixes set SEQLAB_SCAN1_NAME for that row, e.g. '32,32,1@TICKET=0@EARLY_POLL=1'")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma list of torch dtype names")
    ap.add_argument("--graph", action="store_true",
                    help="also time accelerated-scan, the default and every --configs row, forward and fwd+bwd "
                         "replayed from CUDA graphs (GPU time without the Python launch path)")
    ap.add_argument("--check-configs", action="store_true",
                    help="run the correctness checks for every --configs row, not only for rows with flags")
    args = ap.parse_args()
    configs = args.configs.split(";") if args.configs else [",".join(map(str, c)) for c in CONFIGS]
    from accelerated_scan.scalar import scan as acc_scan
    from fla.ops.hgrn import chunk_hgrn

    from seqlab.kernels import scan1

    ctx = Ctx()
    print(torch.cuda.get_device_name(), flush=True)
    x = torch.randn(1 << 30, device=ctx.dev)
    y = torch.empty_like(x)
    ctx.bench("limit: device copy 4GiB (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    copy_gbps = ctx.rows[-1]["GBps"]
    del x, y
    torch.cuda.empty_cache()
    B, T, D = 8, 8192, 1024
    n = B * T * D
    for dt in (getattr(torch, name) for name in args.dtypes.split(",")):
        correctness(ctx, dt, B, T, D)
        es = torch.tensor([], dtype=dt).element_size()
        tag = f"B{B} T{T} D{D} {str(dt)[6:]}"
        xs = torch.randn(B, T, D, device=ctx.dev, dtype=dt)
        gs = F.logsigmoid(torch.randn(B, T, D, device=ctx.dev)).to(dt)
        do = torch.randn_like(xs)
        xr, gr = xs.clone().requires_grad_(), gs.clone().requires_grad_()
        f3, f8 = 3 * n * es, 8 * n * es
        ctx.bench(f"fwd fla.chunk_hgrn {tag}", lambda: chunk_hgrn(xs, gs), bytes_moved=f3)
        ctx.bench(f"fwd+bwd fla.chunk_hgrn {tag}", lambda: torch.autograd.grad(chunk_hgrn(xr, gr)[0], (xr, gr), do), bytes_moved=f8)
        xa, fa = xs.transpose(1, 2).contiguous(), gs.exp().transpose(1, 2).contiguous()
        xar, far = xa.clone().requires_grad_(), fa.clone().requires_grad_()
        doa = do.transpose(1, 2).contiguous()
        ctx.bench(f"fwd accelerated_scan {tag}", lambda: acc_scan(fa, xa), bytes_moved=f3)
        ctx.bench(f"fwd+bwd accelerated_scan {tag}", lambda: torch.autograd.grad(acc_scan(far, xar), (far, xar), doa), bytes_moved=f8)
        if args.graph:
            ctx.bench(f"fwd accelerated_scan CUDA graph {tag}", lambda: acc_scan(fa, xa), bytes_moved=f3, graph=True)
            ctx.bench(f"fwd+bwd accelerated_scan CUDA graph {tag}",
                      lambda: torch.autograd.grad(acc_scan(far, xar), (far, xar), doa), bytes_moved=f8, graph=True)
            ctx.bench(f"fwd ours default CUDA graph {tag}", lambda: scan1(None, xs, log_a=gs), bytes_moved=f3,
                      graph=True)
            ctx.bench(f"fwd+bwd ours default CUDA graph {tag}",
                      lambda: torch.autograd.grad(scan1(None, xr, log_a=gr)[0], (xr, gr), do), bytes_moved=f8,
                      graph=True)
        cfgs = [None] + ([] if args.no_sweep else configs)
        for cfg in cfgs:
            for k in [k for k in os.environ if k.startswith("SEQLAB_SCAN1_")]:
                del os.environ[k]
            if cfg is None:
                label = "default"
            else:
                tile, *flags = cfg.split("@")
                if tile:
                    os.environ["SEQLAB_SCAN1_CFG"] = tile
                for f in flags:
                    k, v = f.split("=")
                    os.environ[f"SEQLAB_SCAN1_{k}"] = v
                label = "cfg " + cfg
                if flags or args.check_configs:  # a change of algorithm, or asked: check it at this shape too
                    correctness(ctx, dt, B, T, D, tag=f" [{cfg}]")
            ctx.bench(f"fwd ours {label} {tag}", lambda: scan1(None, xs, log_a=gs), bytes_moved=f3)
            ctx.bench(f"fwd+bwd ours {label} {tag}", lambda: torch.autograd.grad(scan1(None, xr, log_a=gr)[0], (xr, gr), do),
                      bytes_moved=f8)
            if args.graph and cfg is not None:  # eager bf16 rows are bound by the host (docs/results.md)
                ctx.bench(f"fwd ours {label} CUDA graph {tag}", lambda: scan1(None, xs, log_a=gs), bytes_moved=f3,
                          graph=True)
                ctx.bench(f"fwd+bwd ours {label} CUDA graph {tag}",
                          lambda: torch.autograd.grad(scan1(None, xr, log_a=gr)[0], (xr, gr), do), bytes_moved=f8,
                          graph=True)
        for k in [k for k in os.environ if k.startswith("SEQLAB_SCAN1_")]:
            del os.environ[k]
        for mode in ("fwd", "fwd+bwd"):
            ctx.ratio(f"{mode} ours(default) vs accelerated_scan {tag}", f"{mode} ours default {tag}",
                      f"{mode} accelerated_scan {tag}")
            ctx.ratio(f"{mode} ours(default) vs fla.chunk_hgrn {tag}", f"{mode} ours default {tag}",
                      f"{mode} fla.chunk_hgrn {tag}")
        fw = [r for r in ctx.rows if r.get("name", "").startswith("fwd ours") and tag in r["name"] and "GBps" in r]
        best = max(fw, key=lambda r: r["GBps"])
        ctx.add(name=f"best fwd {best['name']} fraction of copy", ratio=best["GBps"] / copy_gbps, ms=best["ms"])
        dflt = ctx.ms(f"fwd ours default {tag}")
        if dflt:
            ctx.add(name=f"default fwd fraction of copy {tag}", ratio=f3 / dflt / 1e6 / copy_gbps, ms=dflt)
        fb = [r for r in ctx.rows if r.get("name", "").startswith("fwd+bwd ours") and tag in r["name"] and "ms" in r]
        bestb = min(fb, key=lambda r: r["ms"])
        ctx.add(name=f"best fwd+bwd {bestb['name']}", ms=bestb["ms"])
        for r in ctx.rows[-3:]:
            print(r, flush=True)
        del xs, gs, do, xr, gr, xa, fa, xar, far, doa
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(device=torch.cuda.get_device_name(), rows=ctx.rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
