"""Offline sm_90 build of the walking kernels (no GPU needed): for each tile ``CT,BC,VEC,W,S,TS,SEGSCAN``, the
blocked layout Triton picks, the shuffles and ``cp.async`` copies in the PTX and ``ptxas -v`` registers: scan1's
forward and backward (default), or with ``--pa`` prefix_attention's walking value scan and fused walk
(``kernels/prefix_attention/triton_lin_walk.py``, at H = 16, V = 128). The twelfth session's shuffle counts
(docs/results.md, docs/kernels.md) come from:

    python3 benchmarks/scan1_walk_compile_counts.py --dtype fp32 64,32,1,1,3,1,0 64,32,1,1,3,4,0
    python3 benchmarks/scan1_walk_compile_counts.py --dtype bf16 64,32,1,1,3,8,0 64,32,1,1,3,8,1

and the thirteenth session's prefix_attention counts from
``python3 benchmarks/scan1_walk_compile_counts.py --pa --dtype bf16 64,32,1,1,3,8,0 64,32,1,1,3,8,1``.

Each kernel's line also gives its SASS loop (``nvdisasm``, shipped with Triton): the instructions one warp issues a
trip through the pipelined chunk loop, by opcode, and the loop's issue floor at issue 3's scan1 shape (B8 T8192
D1024) or issue 4's prefix_attention shape (B4 T4096 H16 V128) on an H200 against the time to move the kernel's
bytes at copy bandwidth (:func:`issue_bound`). A floor near the copy time means the loop, not HBM, sets the pace; the
fourteenth session ranked the sweep rows by it (docs/results.md, "walking kernels: issue floors").
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import tempfile

FWD_PTRS = ["a_ptr", "b_ptr", "h0_ptr", "h_ptr", "ht_ptr"]
BWD_PTRS = ["a_ptr", "h0_ptr", "h_ptr", "do_ptr", "dht_ptr", "da_ptr", "db_ptr", "dh0_ptr"]
STATE = ("h0_ptr", "ht_ptr", "dht_ptr", "dh0_ptr")  # float32 whatever the storage dtype


def _build(fn, sig, consts, n_div, warps):
    """Compile ``fn`` for sm_90 (the first ``n_div`` arguments 16-divisible, or the argument indices in ``n_div``)
    and return ``(ptx, ttgir, regs)``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas
    from triton.compiler import ASTSource

    ptxas = get_ptxas(90)
    ptxas = getattr(ptxas, "path", ptxas)
    sig = {**sig, **{k: "constexpr" for k in consts}}
    attrs = {(i,): [["tt.divisibility", 16]] for i in (range(n_div) if isinstance(n_div, int) else n_div)}
    k = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": warps})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(k.asm["ptx"])
        out = subprocess.run([ptxas, "-v", "-arch=sm_90a", path, "-o", os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True)
    regs = [ln.split(":")[-1].strip() for ln in (out.stdout + out.stderr).splitlines()
            if "registers" in ln or "spill" in ln]
    return k.asm["ptx"], k.asm["ttgir"], regs, k.asm["cubin"]


def sass_loops(cubin: bytes, min_len: int = 64) -> list[tuple[int, collections.Counter]]:
    """Loops of a cubin's SASS (``nvdisasm``, shipped with Triton): for each backward branch whose body holds at least
    ``min_len`` instructions, ``(instructions in the body, counts by opcode)``, in code order. The body is the
    instruction stream one warp issues per trip (both sides of any branch inside it counted)."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(90)
    nvdisasm = os.path.join(os.path.dirname(getattr(ptxas, "path", ptxas)), "nvdisasm")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        sass = subprocess.run([nvdisasm, "-c", path], capture_output=True, text=True, check=True).stdout
    labels, instrs = {}, []  # label -> index of the next instruction; (opcode, branch target)
    for ln in sass.splitlines():
        lab = re.match(r"^(\.L_x_\d+):", ln)
        if lab:
            labels[lab.group(1)] = len(instrs)
            continue
        m = re.match(r"^\s+/\*[0-9a-f]+\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)(.*)$", ln)
        if m:
            tgt = re.search(r"`\((\.L_x_\d+)\)", m.group(2)) if m.group(1).startswith("BRA") else None
            instrs.append((m.group(1), tgt.group(1) if tgt else None))
    loops = []
    for i, (_, tgt) in enumerate(instrs):
        if tgt is not None and tgt in labels and labels[tgt] <= i and i + 1 - labels[tgt] >= min_len:
            body = instrs[labels[tgt]:i + 1]
            loops.append((len(body), collections.Counter(op.split(".")[0] for op, _ in body)))
    return loops


H200 = dict(sms=132, ghz=1.98, copy_GBps=4225.0)  # SMs, boost clock, device copy (docs/results.md, bf16 runs)


def issue_bound(loop_len: int, trips: int, programs: int, warps: int, nbytes: float) -> str:
    """Issue-time floor of a walking kernel against its copy-bandwidth time on an H200: each warp issues at most one
    instruction a cycle and an SM's four schedulers take one warp each, so a kernel whose ``programs`` of ``warps``
    warps each run ``trips`` trips of a ``loop_len``-instruction loop takes at least ``max(trips * loop_len,
    per-SM warp-trips * loop_len / 4)`` cycles; ``nbytes`` moved at copy bandwidth takes ``nbytes / copy``. A floor
    near the copy time means the loop, not HBM, sets the pace (one warp rarely issues every cycle)."""
    per_sm = -(-programs // H200["sms"]) * warps
    cycles = max(trips * loop_len, per_sm * trips * loop_len / 4)
    issue_us = cycles / (H200["ghz"] * 1e3)
    copy_us = nbytes / (H200["copy_GBps"] * 1e3)
    return (f"loop {loop_len} instr/trip x {trips} trips, {per_sm} warps/SM: issue floor {issue_us:.1f} us vs copy "
            f"{copy_us:.1f} us ({issue_us / copy_us:.2f}x)")


def _line(label: str, ptx: str, ttgir: str, regs, cubin: bytes = b"", shape: tuple | None = None) -> str:
    """One report line; with ``shape = (trips, programs, warps, nbytes)`` also the SASS loops and the issue floor of
    the largest one (:func:`issue_bound`)."""
    ops = collections.Counter(m.group(1) for m in re.finditer(r"^\s+(?:@%p\d+ )?([a-z][a-z0-9]*(?:\.[a-z0-9]+)*)", ptx, re.M))
    layout = re.findall(r"sizePerThread = \[[^\]]*\], threadsPerWarp = \[[^\]]*\]", ttgir)[:1]
    shfl = sum(v for op, v in ops.items() if op.startswith("shfl"))
    cp = sum(v for op, v in ops.items() if op.startswith(("cp.async.ca", "cp.async.cg")))
    ex = sum(v for op, v in ops.items() if op.startswith(("ex2", "lg2")))
    out = f"{label}: shuffles {shfl}, cp.async {cp}, ex2/lg2 {ex}, {layout}, {regs}"
    if shape is not None and cubin:
        loops = sass_loops(cubin)
        if loops:
            n, kinds = max(loops, key=lambda x: x[0])
            top = ", ".join(f"{k} {v}" for k, v in kinds.most_common(8))
            out += f"\n    SASS loops {[x[0] for x in loops]}; main: {top}\n    {issue_bound(n, *shape)}"
    return out


SCAN1_SHAPE = (8, 8192, 1024)  # issue 3's B, T, D
PA_SHAPE = (4, 4096)  # issue 4's B, T (H = 16, V = 128 below)
PA_FUSED_PTRS = ["s", "v", "m0", "u0", "w0", "o", "lse", "mT", "uT", "wT"]
PA_FUSED_DIV = [*range(len(PA_FUSED_PTRS)), len(PA_FUSED_PTRS) + 1, len(PA_FUSED_PTRS) + 2]  # not cu (None)


def pa_fused_sig(dtype: str) -> dict:
    """Signature of ``_pa_fused_walk_kernel`` for dense input (``cu`` a ``None`` constexpr): ``dtype`` values and
    outputs, float32 scores and state."""
    sig = {n: "*" + dtype if n in ("v", "o") else "*fp32" for n in PA_FUSED_PTRS}
    sig.update({"cu": "constexpr", "T": "i32", "nD": "i32"})
    return sig


def pa_counts(dtype: str, cfg: str, H: int = 16, V: int = 128) -> list[str]:
    """prefix_attention's walking value scan (after the score pass) and fused walk, ``dtype`` values, float32
    scores, one-head channel blocks; pointers and ``L, nD`` 16-divisible."""
    from seqlab.kernels.prefix_attention.triton_lin_walk import _pa_fused_walk_kernel, _pa_walk_fwd_kernel

    ct, bc, vec, w, st, ts, seg = (int(x) for x in cfg.split(","))
    tile = dict(H=H, V=V, HAS_H0=0, CT=ct, BC=bc, VEC=vec, STAGES=st, TS=ts, I64=int(os.environ.get("I64", 0)), MASK_D=0, SEGSCAN=seg)
    lines = []
    ptrs = ["beta", "v", "u0", "w0", "o", "uT", "wT"]
    sig = {n: "*" + dtype if n in ("v", "o") else "*fp32" for n in ptrs}
    sig.update({"L": "i32", "nD": "i32"})
    isz = 4 if dtype == "fp32" else 2
    B, T = PA_SHAPE
    shape = (T // ct, B * H * V // (bc * vec), w, 2 * B * T * H * V * isz + 2 * B * T * H * 4)
    lines.append(_line(f"{dtype} pa value walk {cfg}",
                       *_build(_pa_walk_fwd_kernel, sig, tile, len(ptrs) + 2, w), shape=shape))
    lines.append(_line(f"{dtype} pa fused walk {cfg}", *_build(_pa_fused_walk_kernel, pa_fused_sig(dtype),
                                                               {**tile, "cu": None, "SREP": int(os.environ.get("SREP", 2))}, PA_FUSED_DIV, w), shape=shape))
    return lines


def counts(dtype: str, cfg: str) -> list[str]:
    """One line a kernel (forward, backward) for tile ``cfg`` with ``dtype`` storage (``fp32``, ``bf16``, ``fp16``);
    pointers and ``L, D, nD`` marked 16-divisible, as at ``D = 1024``."""
    from seqlab.kernels.scan1.triton_walk import _scan1_walk_bwd_kernel, _scan1_walk_fwd_kernel

    ct, bc, vec, w, st, ts, seg = (int(x) for x in cfg.split(","))
    lines = []
    for name, fn, ptrs, flags in (("fwd", _scan1_walk_fwd_kernel, FWD_PTRS, {"STORE_FINAL": 0}),
                                  ("bwd", _scan1_walk_bwd_kernel, BWD_PTRS, {"HAS_DHT": 0})):
        sig = {n: "*fp32" if n in STATE else "*" + dtype for n in ptrs}
        sig.update({"L": "i32", "D": "i32", "nD": "i32"})
        consts = dict(LOG_A=1, HAS_H0=0, REVERSE=0, CT=ct, BC=bc, VEC=vec, STAGES=st, I64=0, MASK_D=0, TS=ts,
                      SEGSCAN=seg, **flags)
        B, T, D = SCAN1_SHAPE
        passes = 3 if name == "fwd" else 5  # fwd: a, b in, h out; bwd: a, h, do in, da, db out
        shape = (T // ct, B * D // (bc * vec), w, passes * B * T * D * (4 if dtype == "fp32" else 2))
        lines.append(_line(f"{dtype} {name} {cfg}", *_build(fn, sig, consts, len(ptrs) + 3, w), shape=shape))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--pa", action="store_true", help="prefix_attention's walking kernels instead of scan1's")
    ap.add_argument("cfgs", nargs="+", help="CT,BC,VEC,W,S,TS,SEGSCAN")
    args = ap.parse_args()
    for cfg in args.cfgs:
        for ln in (pa_counts if args.pa else counts)(args.dtype, cfg):
            print(ln, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
