"""GPU throughput of the sequence mixers, forward + backward, beside fla's layers at the same settings.

Shape: B=8, T=4096, d_model=1024, bf16 (``--b/--t/--d``). Default rows, in pairs at the same width, heads,
expansions, gates and convolutions (each row's ``settings`` says which):

* our ``gla`` vs ``fla.layers.GatedLinearAttention`` (chunk mode);
* our ``deltanet`` vs ``fla.layers.DeltaNet`` (chunk mode);
* our ``mamba2`` vs ``fla.layers.Mamba2`` (without ``mamba_ssm`` installed fla runs its PyTorch SSD path,
  recorded in the row) and vs ``fla.layers.simple_gla.SimpleGatedLinearAttention`` at Mamba-2's shapes (fla's
  scalar-decay chunk kernel, the op under Mamba-2/SSD; fla 0.6 refuses its backward on Hopper with Triton
  < 3.7.1, fla issue 640, which is recorded as the row's error);
* our ``retnet`` vs ``fla.layers.MultiScaleRetention`` (the same simple-gla chunk kernel with fixed decays,
  which fla's Hopper guard does not block).

Extra rows (``--rows``): our ``mamba`` and the same layer with its scan as a Python loop over time
(``selective_scan_ref``), our ``attention`` (SDPA) and ``aaren``.

How the run stays inside its time budget (``--budget``, seconds, default 85) and stays fair:

1. Every row runs in its own worker process, so an fla import error, a refused backward or a CUDA fault in
   one row cannot affect another; fla is imported inside the worker of an fla row only (first the layer's
   file alone, without ``fla/layers/__init__.py`` and ``fla.models``, and a two-name ``transformers`` shim if
   ``transformers`` is missing; if that fails, the normal ``import fla.layers.<module>``), and every failure
   becomes the row's ``error``.
2. Phase A, in parallel: Triton compiles every autotune config of every kernel once. Each row has
   ``--shards`` workers (fla rows more), each compiling a disjoint share of each kernel's configs on a
   small batch (compile-only: one launch per config, no timing) into Triton's on-disk cache.
3. Phase B, one row at a time, nothing else on the GPU: the row's worker drops the autotuners' choices and
   re-tunes every kernel on the full shape (configs now load from the cache; ``triton.testing.do_bench`` with
   ``--tune-warmup``/``--tune-rep`` ms, the same for ours and fla, fla's on-disk autotune cache is off), then
   times forward and forward+backward with CUDA events: median of ``--reps`` after ``--warmup`` calls;
   tokens/s = B*T / time.

    source benchmarks/device_env.sh && python benchmarks/blocks.py --json $OUT/blocks.json
"""
from __future__ import annotations

import argparse
import gc
import importlib
import importlib.abc
import importlib.util
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import types

import torch
import torch.nn.functional as F
from seqlab.core import create_block

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _profiling import step_ms as _time  # noqa: E402

DEFAULT_ROWS = ["ours gla", "fla GatedLinearAttention", "ours deltanet", "fla DeltaNet", "ours mamba2",
                "fla Mamba2", "fla SimpleGatedLinearAttention", "ours retnet", "fla MultiScaleRetention"]
# ``--compiled``: the same layers of ours under ``torch.compile(fullgraph=True)`` (our kernels are custom ops
# with fake implementations, so the whole layer is one graph and Inductor fuses the convolutions, norms, gates
# and casts around them; fla's layers run as shipped).
COMPILED = " (compiled)"
COMPILED_ROWS = ["ours gla" + COMPILED, "ours deltanet" + COMPILED, "ours mamba2" + COMPILED, "ours retnet" + COMPILED]
EXTRA_ROWS = ["ours mamba", "torch-loop mamba", "ours attention (SDPA)", "ours aaren"] + COMPILED_ROWS
PAIRS = [("ours gla", "fla GatedLinearAttention"), ("ours deltanet", "fla DeltaNet"),
         ("ours mamba2", "fla Mamba2"), ("ours mamba2", "fla SimpleGatedLinearAttention"),
         ("ours retnet", "fla MultiScaleRetention"), ("ours mamba", "torch-loop mamba")]
PAIRS += [(o + COMPILED, p) for o, p in PAIRS if o + COMPILED in COMPILED_ROWS]


# ---------------------------------------------------------------- fla import
def _shim_logger(name: str) -> logging.Logger:
    lg = logging.getLogger(name)
    lg.warning_once = lg.warning  # transformers' logger extension used by fla
    return lg


def _act2fn(name: str):
    """``transformers.activations.ACT2FN`` for the shim: fla's own table."""
    if name != "ACT2FN":
        raise AttributeError(name)
    return importlib.import_module("fla.modules.activations").ACT2FN


class _SkipFlaModels(importlib.abc.MetaPathFinder):
    """Make ``fla.models`` look absent, so ``fla/__init__.py`` skips it (it tolerates ModuleNotFoundError)."""

    def find_spec(self, name, path=None, target=None):
        if name == "fla.models" or name.startswith("fla.models."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _purge_fla() -> None:
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        del sys.modules[name]


def _import_by_file(module: str, cls: str):
    """Only ``fla/layers/<module>.py`` (and what it imports): ``fla/layers/__init__.py``, which imports all ~45
    layers, and ``fla.models`` are skipped; without ``transformers`` a shim gives the two names the layers use."""
    _purge_fla()
    spec = importlib.util.find_spec("fla")
    if spec is None:
        raise ImportError("fla is not installed")
    try:
        import transformers  # noqa: F401
    except ImportError:  # the layer files use only transformers' get_logger and ACT2FN
        tr, tu, ta = (types.ModuleType(n) for n in ("transformers", "transformers.utils", "transformers.activations"))
        tu.logging = types.SimpleNamespace(get_logger=_shim_logger)
        ta.__getattr__ = _act2fn
        tr.utils, tr.activations = tu, ta
        for m in (tr, tu, ta):
            m._seqlab_shim = True
        sys.modules.update({"transformers": tr, "transformers.utils": tu, "transformers.activations": ta})
    pkg = types.ModuleType("fla.layers")  # an empty package: its __init__ is not run
    pkg.__path__ = [p + "/layers" for p in spec.submodule_search_locations]
    sys.modules["fla.layers"] = pkg
    finder = _SkipFlaModels()
    sys.meta_path.insert(0, finder)
    try:
        import fla  # noqa: F401  (fla/__init__.py finds the empty fla.layers and no fla.models)
        return getattr(importlib.import_module(f"fla.layers.{module}"), cls)
    finally:
        sys.meta_path.remove(finder)


def import_fla_layer(module: str, cls: str):
    """``fla.layers.<module>.<cls>`` and how it was imported.

    First the layer's file alone (``"by-file"``: seconds, and an unrelated layer or model that fails to import
    cannot break it), then the normal package import (``"package: <why by-file failed>"``).
    ``SEQLAB_FLA_IMPORT=package`` goes straight to the package import.
    """
    why = "SEQLAB_FLA_IMPORT=package"
    if os.environ.get("SEQLAB_FLA_IMPORT") != "package":
        try:
            return _import_by_file(module, cls), "by-file"
        except Exception as exc:  # any failure: retry with the package import
            if isinstance(exc, ImportError) and "fla is not installed" in str(exc):
                raise
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    _purge_fla()
    for name in ("transformers", "transformers.utils", "transformers.activations"):
        if "_seqlab_shim" in getattr(sys.modules.get(name), "__dict__", {}):
            del sys.modules[name]  # drop our shim: the package route needs the real transformers
    return getattr(importlib.import_module(f"fla.layers.{module}"), cls), f"package: {why}"


# ---------------------------------------------------------------- rows
class LoopMamba(torch.nn.Module):
    """Our Mamba block with the scan replaced by a Python loop over time (``selective_scan_ref``)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.m = inner

    def forward(self, x):
        m = self.m
        b, t, _ = x.shape
        xs, z = m.in_proj(x).chunk(2, dim=-1)
        xs, _ = m.conv1d(xs)  # the block's short conv applies its SiLU
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


def row_spec(name: str, d: int, h: int) -> tuple[str, dict, str]:
    """Row name -> (builder, kwargs, settings): ``builder`` is ``ours:<block>``, ``fla:<module>.<Class>``,
    ``loop:mamba``. Both sides of a pair get the same widths, heads, gates and convolutions."""
    hk, hm = d // h, 2 * d // 64  # head width; Mamba-2 heads (expand 2, headdim 64)
    gla = f"H={h}, K/V per head {d // 2 // h}/{hk}, gate rank 16, tau 16, swish output gate, no conv"
    delta = f"H={h}, K=V={hk} per head, SiLU short convs (4) on q/k/v, L2 q/k, sigmoid beta, RMSNorm output, no gate"
    ssd = f"{hm} heads x headdim 64, N=128, 1 group, conv 4, gated RMSNorm"
    ret = f"H={h}, K/V per head {hk}/{2 * hk}, fixed decays, swish gate + RMSNorm, rotary"
    sgla = (f"Mamba-2 shapes: {hm} heads, K=128 (state N), V=64 (headdim), scalar decay per head, short convs (4) "
            "on q/k/v; q/k per head (Mamba-2 shares B/C), so 2.2x the parameters: a kernel-level peer")
    specs = {
        "ours gla": ("ours:gla", {"num_heads": h, "expand_k": 0.5, "expand_v": 1.0, "gate_low_rank_dim": 16,
                                  "gate_logit_normalizer": 16, "use_output_gate": True}, gla),
        "fla GatedLinearAttention": (
            "fla:gla.GatedLinearAttention",
            {"mode": "chunk", "hidden_size": d, "num_heads": h, "expand_k": 0.5, "expand_v": 1.0,
             "use_short_conv": False, "use_output_gate": True, "gate_fn": "swish", "gate_low_rank_dim": 16,
             "gate_logit_normalizer": 16, "fuse_norm": True}, gla + ", chunk"),
        "ours deltanet": ("ours:deltanet", {"num_heads": h, "expand_k": 1.0, "expand_v": 1.0, "use_short_conv": True,
                                            "conv_size": 4, "use_gate": False}, delta),
        "fla DeltaNet": (
            "fla:delta_net.DeltaNet",
            {"mode": "chunk", "hidden_size": d, "num_heads": h, "expand_k": 1.0, "expand_v": 1.0, "use_beta": True,
             "use_gate": False, "use_short_conv": True, "conv_size": 4, "conv_bias": False, "qk_activation": "silu",
             "qk_norm": "l2"}, delta + ", chunk"),
        "ours mamba2": ("ours:mamba2", {"d_state": 128, "headdim": 64, "expand": 2, "ngroups": 1, "d_conv": 4}, ssd),
        "fla Mamba2": (
            "fla:mamba2.Mamba2",
            {"hidden_size": d, "num_heads": hm, "head_dim": 64, "state_size": 128, "expand": 2, "n_groups": 1,
             "conv_kernel": 4, "chunk_size": 256}, ssd),
        "fla SimpleGatedLinearAttention": (
            "fla:simple_gla.SimpleGatedLinearAttention",
            {"mode": "chunk", "hidden_size": d, "num_heads": hm, "expand_k": 128 * hm / d, "expand_v": 64 * hm / d,
             "use_short_conv": True, "conv_size": 4}, sgla),
        "ours retnet": ("ours:retnet", {"num_heads": h, "expand_k": 1.0, "expand_v": 2.0}, ret),
        "fla MultiScaleRetention": (
            "fla:multiscale_retention.MultiScaleRetention",
            {"mode": "chunk", "hidden_size": d, "num_heads": h, "expand_k": 1.0, "expand_v": 2.0,
             "use_short_conv": False, "use_output_gate": True, "gate_fn": "swish", "fuse_norm": True},
            ret + ", chunk"),
        "ours mamba": ("ours:mamba", {}, "d_state 16, expand 2, conv 4"),
        "torch-loop mamba": ("loop:mamba", {}, "same layer, scan as a Python loop over T"),
        "ours attention (SDPA)": ("ours:attention", {"num_heads": h}, f"H={h}, causal, rotary"),
        "ours aaren": ("ours:aaren", {"num_heads": h}, f"H={h}"),
    }
    if name.endswith(COMPILED) and name[: -len(COMPILED)] in specs and name in COMPILED_ROWS:
        builder, kw, settings = specs[name[: -len(COMPILED)]]
        return builder, kw, settings + ", torch.compile(fullgraph=True)"
    if name not in specs:
        raise SystemExit(f"blocks.py: unknown row {name!r}; known: {sorted(specs) + COMPILED_ROWS}")
    return specs[name]


class _Compiled(torch.nn.Module):
    """``torch.compile(fullgraph=True)`` of a block's forward; parameters stay those of ``inner``."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.fn = torch.compile(inner, fullgraph=True)

    def forward(self, x):
        return self.fn(x)


def build_row(name: str, d: int, h: int) -> tuple[torch.nn.Module, dict]:
    """The row's module and notes (import route, fla code path)."""
    builder, kw, _ = row_spec(name, d, h)
    kind, _, what = builder.partition(":")
    notes: dict = {}
    if kind == "ours":
        mod = create_block(what, d, **kw)
        return (_Compiled(mod) if name.endswith(COMPILED) else mod), notes
    if kind == "loop":
        return LoopMamba(create_block("mamba", d)), notes
    module, cls = what.rsplit(".", 1)
    layer_cls, notes["fla_import"] = import_fla_layer(module, cls)
    if module == "mamba2":
        mod = sys.modules[layer_cls.__module__]
        notes["fla_path"] = ("mamba_ssm kernels" if getattr(mod, "is_fast_path_available", False)
                             else "PyTorch SSD fallback (mamba_ssm not installed)")
    return layer_cls(**kw), notes


# ---------------------------------------------------------------- autotune control
_BENCH: list = [None]  # the benchmark function every Triton autotuner uses (None: Triton's own)
_SHARD: list = [None]  # (index, count) while compiling a share of the configs


def patch_autotuner() -> str:
    """Route every ``triton.autotune`` through ``_BENCH`` / ``_SHARD``; returns a note (or the failure)."""
    try:
        from triton.runtime.autotuner import Autotuner
    except Exception as exc:  # noqa: BLE001
        return f"not patched: {type(exc).__name__}: {exc}"
    if getattr(Autotuner, "_seqlab_patched", False):
        return "patched"
    orig_prune = Autotuner.prune_configs
    orig_bench = Autotuner.__dict__.get("do_bench")

    def prune(self, kwargs):
        cfgs = orig_prune(self, kwargs)
        if _SHARD[0] is None or len(cfgs) <= 1:
            return cfgs
        i, n = _SHARD[0]
        return cfgs[i::n] or cfgs[:1]

    def bench(self):
        if _BENCH[0] is not None:
            return _BENCH[0]
        return orig_bench.func(self) if hasattr(orig_bench, "func") else orig_bench.__get__(self)

    Autotuner.prune_configs = prune
    Autotuner.do_bench = property(bench)
    Autotuner._seqlab_patched = True
    return "patched"


def compile_only_bench(kernel_call, quantiles=None):
    kernel_call()  # compiles the config (into the on-disk cache) and runs it once
    return [1.0, 1.0, 1.0]


def clear_autotune_choices() -> int:
    """Forget every autotuner's chosen config (so the next call re-tunes); returns how many were cleared."""
    try:
        from triton.runtime.autotuner import Autotuner
    except Exception:  # noqa: BLE001
        return 0
    n = 0
    for obj in gc.get_objects():
        if isinstance(obj, Autotuner) and obj.cache:
            obj.cache.clear()
            n += 1
    return n


# ---------------------------------------------------------------- timing
def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:240] if str(exc) else ''}"


def _passes(mod: torch.nn.Module, x: torch.Tensor):
    xg = x.detach().clone().requires_grad_(True)

    def out():
        y = mod(xg)
        return y[0] if isinstance(y, tuple) else y

    def fwd():
        with torch.no_grad():
            out()

    def fwd_bwd():
        mod.zero_grad(set_to_none=True)
        out().float().square().mean().backward()

    return fwd, fwd_bwd


def _emit(obj: dict) -> None:
    print("@@" + json.dumps(obj), flush=True)


def worker(a: argparse.Namespace) -> int:
    """One row's worker: phase A (compile a share), then, if the timer, wait for ``go`` and time the row."""
    dev = "cuda" if torch.cuda.is_available() and not a.cpu_smoke else "cpu"
    cuda = dev == "cuda"
    dt = torch.bfloat16 if cuda else torch.float32
    torch.set_num_threads(1)
    note = patch_autotuner()
    row = {"row": a.worker, "settings": row_spec(a.worker, a.d, a.heads)[2], "autotune_patch": note,
           "device_name": torch.cuda.get_device_name() if cuda else "cpu"}
    try:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        mod, notes = build_row(a.worker, a.d, a.heads)
        row.update(notes)
        mod = mod.to(device=dev, dtype=dt)
        row["params"] = sum(p.numel() for p in mod.parameters())
        row["build_s"] = round(time.perf_counter() - t0, 2)
    except Exception as exc:  # noqa: BLE001
        row["error"] = "build: " + _err(exc)
        _emit({"event": "error", "row": row})
        return 0
    # phase A: compile this worker's share of every kernel's configs on a small batch
    _SHARD[0] = (a.shard, a.nshards) if a.nshards > 1 else None
    _BENCH[0] = compile_only_bench
    t0 = time.perf_counter()
    xw = torch.randn(a.warm_b, a.t, a.d, device=dev, dtype=dt)
    fwd, fwd_bwd = _passes(mod, xw)
    for label, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001  (e.g. a refused backward: recorded, the forward still timed)
            row[f"{label}_error"] = _err(exc)
            if label == "fwd":
                break
    if cuda:
        torch.cuda.synchronize()
    row["compile_s"] = round(time.perf_counter() - t0, 2)
    del xw, fwd, fwd_bwd
    mod.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.empty_cache()
    if a.shard != 0:
        _emit({"event": "compiled", "row": row})
        return 0
    _emit({"event": "ready", "row": row})
    if sys.stdin.readline().strip() != "go":
        return 0
    # phase B: re-tune on the full shape with a real benchmark, alone on the GPU, then time
    _SHARD[0] = None
    if cuda:
        import triton.testing

        _BENCH[0] = lambda kernel_call, quantiles=None: triton.testing.do_bench(
            kernel_call, warmup=a.tune_warmup, rep=a.tune_rep, quantiles=quantiles)
    row["autotuners_cleared"] = clear_autotune_choices()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if "fwd_error" in row:
        row["error"] = row["fwd_error"]
        _emit({"event": "result", "row": row})
        return 0
    x = torch.randn(a.b, a.t, a.d, device=dev, dtype=dt)
    fwd, fwd_bwd = _passes(mod, x)
    loop = a.worker.startswith("torch-loop")
    warm, reps = (0, 1) if loop else (a.warmup, a.reps)
    try:
        t0 = time.perf_counter()
        row["fwd_ms"] = _time(fwd, warm, reps, cuda)
        if "fwd_bwd_error" not in row:
            row["fwd_bwd_ms"] = _time(fwd_bwd, warm, reps, cuda)
            row["fwd_bwd_tok_s"] = a.b * a.t / (row["fwd_bwd_ms"] / 1e3)
        row["fwd_tok_s"] = a.b * a.t / (row["fwd_ms"] / 1e3)
        row["tune_and_time_s"] = round(time.perf_counter() - t0, 2)
        if cuda:
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    except Exception as exc:  # noqa: BLE001
        row["error"] = _err(exc)
    _emit({"event": "result", "row": row})
    return 0


# ---------------------------------------------------------------- parent
class _Worker:
    def __init__(self, row: str, shard: int, nshards: int, a: argparse.Namespace, logdir: str) -> None:
        self.row, self.shard = row, shard
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", row, "--shard", str(shard),
               "--nshards", str(nshards)]
        for k in ("b", "t", "d", "heads", "warm_b", "warmup", "reps", "tune_warmup", "tune_rep"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
        if a.cpu_smoke:
            cmd.append("--cpu-smoke")
        env = {**os.environ, "FLA_CACHE_RESULTS": "0", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.log = os.path.join(logdir, f"{row.replace(' ', '_')}.{shard}.log")
        with open(self.log, "w") as logf:
            self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, env=env,
                                      text=True)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last: dict | None = None

    def _read(self) -> None:
        for line in self.p.stdout:
            if line.startswith("@@"):
                self.events.put(json.loads(line[2:]))
        self.events.put({"event": "exit"})

    def wait_event(self, until: float) -> dict | None:
        try:
            ev = self.events.get(timeout=max(until - time.time(), 0.01))
        except queue.Empty:
            return None
        if ev["event"] != "exit":
            self.last = ev
        return ev

    def tail(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-400:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()  # our own worker process
            self.p.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="block throughput vs fla's layers (GPU)")
    p.add_argument("--b", type=int, default=8)
    p.add_argument("--t", type=int, default=4096)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warm-b", type=int, default=2, help="batch of the phase-A compile pass")
    p.add_argument("--tune-warmup", type=float, default=3.0, help="ms of warm-up per autotune config (phase B)")
    p.add_argument("--tune-rep", type=float, default=10.0, help="ms of timing per autotune config (phase B)")
    p.add_argument("--shards", type=int, default=0, help="compile workers per row (0: by CPU count, fla x3)")
    p.add_argument("--rows", default="", help="comma-separated rows (default: the fla comparison; 'all')")
    p.add_argument("--compiled", action="store_true",
                   help="add ours under torch.compile(fullgraph=True) after the default rows")
    p.add_argument("--budget", type=float, default=85.0, help="wall seconds for the whole run")
    p.add_argument("--compile-budget", type=float, default=0.0,
                   help="seconds for phase A (default: 60%% of --budget)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run of the harness (no timing value)")
    p.add_argument("--json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--nshards", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a)
    if not a.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("blocks.py needs a CUDA device (or --cpu-smoke)")
    t_start = time.time()
    deadline = t_start + a.budget
    names = (DEFAULT_ROWS + EXTRA_ROWS if a.rows == "all" else a.rows.split(",") if a.rows else DEFAULT_ROWS)
    if a.compiled:
        names += [n for n in COMPILED_ROWS if n not in names]
    for n in names:
        row_spec(n, a.d, a.heads)  # unknown names fail here
    ncpu = os.cpu_count() or 1
    # compile workers per row, about one per CPU core in all: fla's chunk kernels autotune ~5x more configs
    # than ours; ours over simple_gla autotune a few; fla's Mamba2 without mamba_ssm and the loop compile little
    weights = {n: 3 if n.startswith("fla") and n != "fla Mamba2" else 2 if n in ("ours mamba2", "ours retnet")
               else 1 for n in names}
    shards = {n: a.shards or (1 if a.cpu_smoke else max(1, min(8, round(weights[n] * ncpu / sum(weights.values())))))
              for n in names}
    logdir = tempfile.mkdtemp(prefix="blocks_")
    workers = {n: [_Worker(n, i, shards[n], a, logdir) for i in range(shards[n])] for n in names}
    print(f"phase A: {sum(shards.values())} workers for {len(names)} rows ({shards}), logs in {logdir}", flush=True)
    # phase A: wait for every worker's compile pass (or the compile budget)
    phase_a_end = t_start + (a.compile_budget or 0.6 * a.budget)
    state: dict[str, dict] = {}
    for n in names:
        for w in workers[n]:
            ev = w.wait_event(phase_a_end)
            if w.shard != 0:
                if ev is None:
                    w.stop()  # a compile helper still running: the timer compiles what is left
                continue
            if ev is None:  # the timer is still compiling: phase B waits for it while time remains
                state[n] = {"row": n, "_pending": True}
            elif ev["event"] == "exit":
                state[n] = {"row": n, "error": f"worker died in phase A; stderr tail: {w.tail()}"}
            else:
                state[n] = ev["row"]
                state[n]["_ready"] = ev["event"] == "ready"
    print(f"phase A done at {time.time() - t_start:.1f} s", flush=True)
    for n in names:
        for w in workers[n][1:]:
            w.stop()
    # phase B: one row at a time
    results = []
    for n in names:
        timer = workers[n][0]
        row = state[n]
        if row.pop("_pending", False):
            ev = timer.wait_event(deadline)
            if ev is None:
                row["error"] = "compile pass not finished within the time budget"
            elif ev["event"] == "exit":
                row["error"] = f"worker died in phase A; stderr tail: {timer.tail()}"
            else:
                row = ev["row"]
                row["_ready"] = ev["event"] == "ready"
        if row.pop("_ready", False):
            if time.time() >= deadline:
                row["error"] = "not reached (time budget)"
            else:
                try:
                    timer.p.stdin.write("go\n")
                    timer.p.stdin.flush()
                except OSError as exc:
                    row["error"] = f"worker gone: {exc}"
                ev = None
                while "error" not in row:
                    ev = timer.wait_event(deadline)
                    if ev is None or ev["event"] in ("result", "exit"):
                        break
                if "error" not in row:
                    if ev is None:
                        row["error"] = "timing not finished within the time budget"
                    elif ev["event"] == "exit":
                        row["error"] = f"worker died in phase B; stderr tail: {timer.tail()}"
                    else:
                        row = ev["row"]
        timer.stop()
        results.append(row)
        print(json.dumps(row), flush=True)
        _write(a, results, t_start, shards)
    for n in names:
        for w in workers[n]:
            w.stop()
    dev_name = _device_name(results)
    print(f"\n{dev_name}  B={a.b} T={a.t} d_model={a.d} heads={a.heads} "
          f"{'bf16' if not a.cpu_smoke else 'fp32 (cpu smoke)'}  wall {time.time() - t_start:.1f} s")
    print("| layer | settings | fwd ms | fwd+bwd ms | fwd+bwd tokens/s | peak GiB | params |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        cells = [f"{r['fwd_ms']:.2f}" if "fwd_ms" in r else "-",
                 f"{r['fwd_bwd_ms']:.2f}" if "fwd_bwd_ms" in r else "-",
                 f"{r['fwd_bwd_tok_s']:,.0f}" if "fwd_bwd_tok_s" in r else "-",
                 f"{r['peak_gib']:.1f}" if "peak_gib" in r else "-", f"{r.get('params', '-')}"]
        errs = "; ".join(dict.fromkeys(r[k] for k in ("error", "fwd_error", "fwd_bwd_error") if k in r))
        print(f"| {r['row']} | {r.get('settings', '')} | " + " | ".join(cells) + (f" | {errs}" if errs else "") + " |")
    ratios = _ratios(results)
    print("\n| ours | peer | fwd+bwd speed-up (peer ms / ours ms) | fwd speed-up |")
    print("|---|---|---|---|")
    for q in ratios:
        fb = f"{q['fwd_bwd_speedup']:.2f}x" if q.get("fwd_bwd_speedup") else "-"
        print(f"| {q['ours']} | {q['peer']} | {fb} | {q['fwd_speedup']:.2f}x |")
    _write(a, results, t_start, shards)
    return 0


def _device_name(results: list[dict]) -> str | None:
    """From the workers: the parent process opens no CUDA context."""
    return next((r["device_name"] for r in results if "device_name" in r), None)


def _ratios(results: list[dict]) -> list[dict]:
    by = {r["row"]: r for r in results}
    out = []
    for o, q in PAIRS:
        if o in by and q in by and "fwd_ms" in by[o] and "fwd_ms" in by[q]:
            r = {"ours": o, "peer": q, "fwd_speedup": by[q]["fwd_ms"] / by[o]["fwd_ms"]}
            if "fwd_bwd_ms" in by[o] and "fwd_bwd_ms" in by[q]:
                r["fwd_bwd_speedup"] = by[q]["fwd_bwd_ms"] / by[o]["fwd_bwd_ms"]
            out.append(r)
    return out


def _write(a: argparse.Namespace, results: list[dict], t_start: float, shards: dict) -> None:
    """Write the JSON after every row, so a run cut short keeps what it measured."""
    if not a.json:
        return
    cuda = not a.cpu_smoke
    meta = {"device": _device_name(results), "torch": torch.__version__, "B": a.b,
            "T": a.t, "d_model": a.d, "heads": a.heads, "dtype": "bf16" if cuda else "fp32", "argv": sys.argv,
            "warmup": a.warmup, "reps": a.reps, "tune_warmup_ms": a.tune_warmup, "tune_rep_ms": a.tune_rep,
            "shards": shards, "wall_s": round(time.time() - t_start, 1), "budget_s": a.budget}
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        meta["triton"] = None
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "rows": results, "ratios": _ratios(results)}, f, indent=1)


if __name__ == "__main__":
    raise SystemExit(main())
