"""Compile the Triton kernels a CPU run launches for an NVIDIA sm_90 (Hopper) GPU, with no GPU present.

The interpreter (``TRITON_INTERPRET=1``) runs kernels as NumPy and never type-checks them the way the compiler
does, so a kernel can pass every CPU test and still fail to build on a GPU (commit 9710d0e fixed one:
``causal_conv1d`` rebound a ``[BT, BC]`` tile name to a ``[BK, BC]`` tile inside a runtime ``if``, a
``CompilationError`` on the H200 only). This module closes that gap in CI:

1. :func:`record_launches` wraps the interpreter's launch and records, per launch, the kernel, the Triton type of
   every runtime argument and the value of every ``tl.constexpr`` (the autotune config's included), as
   ``triton.runtime.jit`` would specialise them (integers equal to 1 become constants).
2. :func:`compile_specs` compiles each distinct launch with ``triton.compile(ASTSource(...),
   target=GPUTarget("cuda", 90, 32))`` in child processes without ``TRITON_INTERPRET`` (the kernels must be real
   ``JITFunction``s there): front end, TTGIR, LLVM, PTX and ``ptxas`` to a cubin, all on the CPU.

:func:`half_to_bf16` derives the bfloat16 variant of a float16 launch (pointer types only; the interpreter
cannot run bf16 ``tl.dot``), so bf16 code paths are compiled without running them; :func:`gpu_options` raises the
interpreter's one-warp, one-stage launch options to GPU-like ones.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import torch

_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
           torch.int32: "i32", torch.int64: "i64", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8",
           torch.bool: "i1"}
_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg")
TARGET = ("cuda", 90, 32)


def _encode(v):
    import triton.language as tl

    if isinstance(v, tl.dtype):
        return {"__tl_dtype__": v.name}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"constexpr value {v!r} of type {type(v).__name__} cannot be recorded")


def _decode(v):
    import triton.language as tl

    if isinstance(v, dict) and "__tl_dtype__" in v:
        return getattr(tl, v["__tl_dtype__"])
    return v


def _spec(fn, args, kwargs) -> dict:
    """One launch of interpreted kernel ``fn`` -> a JSON-able compile spec."""
    import inspect

    from triton.runtime.jit import JITFunction

    py = fn.fn
    params = JITFunction(py).params
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in _OPTIONS}
    bound = inspect.signature(py).bind(*args, **kwargs)
    bound.apply_defaults()
    signature, constexprs = {}, {}
    for p in params:
        v = bound.arguments[p.name]
        if p.is_constexpr or v is None:
            signature[p.name], constexprs[p.name] = "constexpr", _encode(v)
        elif isinstance(v, torch.Tensor):
            signature[p.name] = "*" + _DTYPES[v.dtype]
        elif isinstance(v, bool):
            signature[p.name] = "i1"
        elif isinstance(v, int):
            if v == 1 and not p.do_not_specialize:
                signature[p.name], constexprs[p.name] = "constexpr", 1
            else:
                signature[p.name] = "i32" if -2 ** 31 <= v < 2 ** 31 else "i64"
        elif isinstance(v, float):
            signature[p.name] = "fp32"
        else:
            raise TypeError(f"{py.__name__}: argument {p.name} of type {type(v).__name__} is not recorded")
    return {"module": py.__module__, "name": py.__name__, "signature": signature, "constexprs": constexprs,
            "options": options}


@contextlib.contextmanager
def record_launches(specs: list, execute: bool = False):
    """Append a compile spec to ``specs`` for every interpreted kernel launch inside the block.

    With ``execute=False`` the kernels do not run (their outputs keep whatever the allocation held): the launch
    sequence of an op depends on shapes, dtypes and flags, not on values, so recording is then nearly free.
    """
    from triton.runtime.interpreter import InterpretedFunction

    orig = InterpretedFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        if not warmup:
            specs.append(_spec(self, args, dict(kwargs)))
            if not execute:
                return None
        return orig(self, *args, grid=grid, warmup=warmup, **kwargs)

    InterpretedFunction.run = run
    try:
        yield specs
    finally:
        InterpretedFunction.run = orig


def half_to_bf16(specs: list) -> list:
    """The bfloat16 twins of the launches whose pointers include float16 ones (float16 -> bfloat16)."""
    out = []
    for s in specs:
        if any(t == "*fp16" for t in s["signature"].values()):
            out.append({**s, "signature": {k: "*bf16" if t == "*fp16" else t for k, t in s["signature"].items()}})
    return out


def unique(specs: list) -> list:
    seen, out = set(), []
    for s in specs:
        key = json.dumps(s, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def gpu_options(specs: list, min_warps: int = 4, min_stages: int = 2) -> list:
    """Raise the interpreter's launch options (one warp, one stage) to what GPU autotune configs use: at least
    ``min_warps`` warps and ``min_stages`` pipeline stages (so the software pipeliner runs). One warp is also what
    makes the largest backward kernels take minutes in ``ptxas``."""
    out = []
    for s in specs:
        o = dict(s["options"])
        o["num_warps"] = max(o.get("num_warps", 4), min_warps)
        o["num_stages"] = max(o.get("num_stages", 3), min_stages)
        out.append({**s, "options": o})
    return out


def compile_specs(specs: list, workers: int = 2, timeout: float = 900.0) -> list[str]:
    """Compile every spec for sm_90 in ``workers`` child processes; returns one error line per failed spec."""
    specs = unique(specs)
    if not specs:
        return []
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(workers):
            part = specs[i::workers]
            if not part:
                continue
            path = os.path.join(tmp, f"specs{i}.json")
            with open(path, "w") as f:
                json.dump(part, f)
            procs.append(subprocess.Popen([sys.executable, __file__, path], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
        errors = []
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            errors += [ln[len("FAIL "):] for ln in out.splitlines() if ln.startswith("FAIL ")]
            if p.returncode != 0:
                errors.append(f"compile worker exited with {p.returncode}: {out[-2000:]}")
    return errors


def _compile_file(path: str) -> int:
    import importlib

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    with open(path) as f:
        specs = json.load(f)
    for s in specs:
        obj = getattr(importlib.import_module(s["module"]), s["name"])
        while not isinstance(obj, JITFunction):  # Autotuner / Heuristics wrappers
            obj = obj.fn
        consts = {k: _decode(v) for k, v in s["constexprs"].items()}
        label = f"{s['module']}.{s['name']} {s['signature']} {s['constexprs']} {s['options']}"
        try:
            triton.compile(ASTSource(obj, s["signature"], consts), target=GPUTarget(*TARGET), options=s["options"])
            print(f"ok {s['name']}", flush=True)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            msg = " ".join(str(exc).split())[-600:]
            print(f"FAIL {label}: {type(exc).__name__}: {msg}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_compile_file(sys.argv[1]))
