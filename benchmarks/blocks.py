"""GPU throughput of the sequence mixers, forward + backward, beside the layers a user would otherwise pick.

Shape: B=8, T=4096, d_model=1024, bf16 (``--b/--t/--d`` to change). Rows:

* our ``mamba`` (Mamba-1 over ``kernels.scan1``) vs the same layer with its scan as a pure-PyTorch loop
  over time (the ``selective_scan_ref`` of state-spaces/mamba, one step per token);
* our ``gla`` vs ``fla.layers.GatedLinearAttention``; our ``deltanet`` vs ``fla.layers.DeltaNet``;
* our ``mamba2`` vs ``fla.layers.Mamba2`` (fla's fallback path without ``mamba_ssm``) and
  ``fla.layers.SimpleGatedLinearAttention`` (fla's scalar-decay chunk kernel, the op under Mamba-2/SSD);
* our ``retnet`` vs ``fla.layers.MultiScaleRetention``; our ``attention`` (SDPA) and ``aaren`` for scale.

Both sides of a pair use the same width, heads and expansion. Timing: CUDA events, median of ``--reps``
after ``--warmup`` calls; tokens/s = B*T / time. A peer that raises (e.g. fla's chunk_simple_gla backward,
which fla 0.6 refuses on Hopper with Triton 3.6) is recorded with its error instead of a number.

fla's layers are imported normally; when that fails (no ``transformers``), the layer modules are imported one
by one with a minimal ``transformers`` shim (``get_logger``, ``ACT2FN``).

    python benchmarks/blocks.py --json $OUT/blocks.json
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import statistics
import sys
import types

import torch
import torch.nn.functional as F
from seqlab.core import create_block


def _shim_logger(name: str) -> logging.Logger:
    lg = logging.getLogger(name)
    lg.warning_once = lg.warning  # transformers' logger extension used by fla
    return lg


def _fla_layer(module: str, cls: str):
    """Import ``fla.layers.<module>.<cls>`` without running ``fla/layers/__init__.py``."""
    try:  # the normal import first (needs transformers and einops)
        return getattr(importlib.import_module(f"fla.layers.{module}"), cls)
    except ImportError:
        pass
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        del sys.modules[name]  # drop the half-imported package before the by-file route
    if "fla.layers" not in sys.modules:  # before `import fla`, whose __init__ imports fla.layers
        spec = importlib.util.find_spec("fla")
        if spec is None:
            raise ImportError("fla is not installed")
        pkg = types.ModuleType("fla.layers")
        pkg.__path__ = [p + "/layers" for p in spec.submodule_search_locations]
        sys.modules["fla.layers"] = pkg
        import fla  # noqa: F401  (fla.models is skipped by fla itself when transformers is missing)
    try:
        import transformers  # noqa: F401
    except ImportError:  # the layer files use only get_logger and ACT2FN
        tr, tu = types.ModuleType("transformers"), types.ModuleType("transformers.utils")
        tu.logging = types.SimpleNamespace(get_logger=_shim_logger)
        ta = types.ModuleType("transformers.activations")
        ta.ACT2FN = importlib.import_module("fla.modules.activations").ACT2FN
        tr.utils, tr.activations = tu, ta
        sys.modules.update({"transformers": tr, "transformers.utils": tu, "transformers.activations": ta})
    return getattr(importlib.import_module(f"fla.layers.{module}"), cls)


class LoopMamba(torch.nn.Module):
    """Our Mamba block with the scan replaced by a Python loop over time (``selective_scan_ref``)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.m = inner

    def forward(self, x):
        m = self.m
        b, t, _ = x.shape
        xs, z = m.in_proj(x).chunk(2, dim=-1)
        xs, _ = m.conv1d(xs)
        xs = F.silu(xs)
        dt, B, C = m.x_proj(xs).split([m.dt_rank, m.d_state, m.d_state], dim=-1)
        dt = F.softplus(m.dt_proj(dt).float())
        A = -torch.exp(m.A_log.float())
        h = x.new_zeros(b, m.d_inner, m.d_state, dtype=torch.float32)
        ys = []
        for i in range(t):
            h = torch.exp(dt[:, i, :, None] * A) * h + (dt[:, i] * xs[:, i].float())[..., None] * B[:, i, None, :].float()
            ys.append((h * C[:, i, None, :].float()).sum(-1))
        y = torch.stack(ys, 1).to(x.dtype)
        y = (y + xs * m.D.to(x.dtype)) * F.silu(z)
        return m.out_proj(y), None


def _time(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def measure(name: str, build, x: torch.Tensor, warmup: int, reps: int) -> dict:
    row = {"row": name}
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        mod = build().to(device=x.device, dtype=x.dtype)
        xg = x.detach().clone().requires_grad_(True)

        def out():
            y = mod(xg)
            return y[0] if isinstance(y, tuple) else y

        def fwd():
            with torch.no_grad():
                out()

        def fwd_bwd():
            out().float().square().mean().backward()

        row["fwd_ms"] = _time(fwd, warmup, reps)
        row["fwd_bwd_ms"] = _time(fwd_bwd, warmup, reps)
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
        row["fwd_bwd_tok_s"] = x.shape[0] * x.shape[1] / (row["fwd_bwd_ms"] / 1e3)
        row["params"] = sum(p.numel() for p in mod.parameters())
    except Exception as exc:  # noqa: BLE001  (recorded in the table, not hidden)
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    finally:
        torch.cuda.synchronize()
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="block throughput vs peers (GPU)")
    p.add_argument("--b", type=int, default=8)
    p.add_argument("--t", type=int, default=4096)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rows", default="", help="comma-separated subset of rows")
    p.add_argument("--json")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("blocks.py needs a CUDA device")
    dev, dt = "cuda", torch.bfloat16
    torch.manual_seed(0)
    x = torch.randn(a.b, a.t, a.d, device=dev, dtype=dt)
    d, h = a.d, a.heads

    def fla(module, cls, **kw):
        return lambda: _fla_layer(module, cls)(**kw)

    rows = {
        "ours mamba": lambda: create_block("mamba", d),
        "torch-loop mamba": lambda: LoopMamba(create_block("mamba", d)),
        "ours gla": lambda: create_block("gla", d, num_heads=h),
        "fla GatedLinearAttention": fla("gla", "GatedLinearAttention", hidden_size=d, num_heads=h, expand_k=0.5,
                                        expand_v=1.0, mode="chunk"),
        "ours deltanet": lambda: create_block("deltanet", d, num_heads=h),
        "fla DeltaNet": fla("delta_net", "DeltaNet", hidden_size=d, num_heads=h, expand_k=1.0, expand_v=1.0,
                            mode="chunk"),
        "ours mamba2": lambda: create_block("mamba2", d, d_state=128, headdim=64),
        "fla Mamba2": fla("mamba2", "Mamba2", hidden_size=d, head_dim=64, num_heads=2 * d // 64, state_size=128,
                          expand=2),
        "fla SimpleGatedLinearAttention": fla("simple_gla", "SimpleGatedLinearAttention", hidden_size=d,
                                              num_heads=2 * d // 64, expand_k=4.0, expand_v=2.0),
        "ours retnet": lambda: create_block("retnet", d, num_heads=h),
        "fla MultiScaleRetention": fla("multiscale_retention", "MultiScaleRetention", hidden_size=d, num_heads=h,
                                       expand_k=1.0, expand_v=2.0),
        "ours attention (SDPA)": lambda: create_block("attention", d, num_heads=h),
        "ours aaren": lambda: create_block("aaren", d, num_heads=h),
    }
    names = a.rows.split(",") if a.rows else list(rows)
    results = []
    for n in names:
        reps = 1 if n.startswith("torch-loop") else a.reps
        warm = 0 if n.startswith("torch-loop") else a.warmup
        results.append(measure(n, rows[n], x, warm, reps))
        if a.json:  # after every row, so a run cut short keeps what it measured
            with open(a.json, "w") as f:
                json.dump({"rows": results}, f, indent=1)
    print(f"\n{torch.cuda.get_device_name()}  B={a.b} T={a.t} d_model={a.d} heads={h} bf16")
    print("| layer | fwd ms | fwd+bwd ms | fwd+bwd tokens/s | peak GiB |")
    print("|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['row']} | error: {r['error']} | | | |")
        else:
            print(f"| {r['row']} | {r['fwd_ms']:.2f} | {r['fwd_bwd_ms']:.2f} | {r['fwd_bwd_tok_s']:,.0f} | "
                  f"{r['peak_gib']:.1f} |")
    by = {r["row"]: r for r in results}
    pairs = [("ours mamba", "torch-loop mamba"), ("ours gla", "fla GatedLinearAttention"),
             ("ours deltanet", "fla DeltaNet"), ("ours mamba2", "fla Mamba2"),
             ("ours mamba2", "fla SimpleGatedLinearAttention"), ("ours retnet", "fla MultiScaleRetention")]
    print("\n| ours | peer | fwd+bwd speed-up (peer ms / ours ms) | fwd speed-up |")
    print("|---|---|---|---|")
    ratios = []
    for o, q in pairs:
        if o in by and q in by and "error" not in by[o] and "error" not in by[q]:
            r1, r2 = by[q]["fwd_bwd_ms"] / by[o]["fwd_bwd_ms"], by[q]["fwd_ms"] / by[o]["fwd_ms"]
            ratios.append({"ours": o, "peer": q, "fwd_bwd_speedup": r1, "fwd_speedup": r2})
            print(f"| {o} | {q} | {r1:.2f}x | {r2:.2f}x |")
    if a.json:
        meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "B": a.b, "T": a.t, "d_model": a.d,
                "heads": h, "dtype": "bf16", "argv": sys.argv}
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": results, "ratios": ratios}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
