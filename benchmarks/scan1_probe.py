"""Probe kernels for scan1's forward memory pattern on ``[B, T, D]`` (D contiguous), beside the real kernel and the
peers, in one process (GPU only; results of the ``copy`` and ``noback`` modes are wrong by design).

The eighth session's ablations (docs/results.md) showed that even the forward tile's loads and stores alone
(``SEQLAB_SCAN1_ABLATE=2``) ran at 67% of copy bandwidth in bf16 (94% in float32), so the tile pattern, not the scan,
bounds the bf16 forward. This script times row-loop programs instead: one program per (chunk of ``CT`` steps,
sequence, block of ``BD`` channels), a ``tl.static_range`` loop over the chunk's rows, each row a ``[BD]`` vector
(``VEC = BD / (32 * warps)`` adjacent channels a thread: 16-byte loads at ``VEC = 8`` in bf16). Modes:

* ``copy``: ``h = a * b`` row by row (the pattern's ceiling);
* ``noback``: the sequential scan of each chunk from zero (no look-back);
* ``two``: the real scan in two phases: the chunk's aggregate from a first pass over its rows, the look-back of
  :mod:`seqlab.kernels.scan1.triton_scan` (same one-word workspace), then a second pass that loads the rows again
  (L1/L2 hits: the chunk was read microseconds before) and stores ``h``. Registers hold no tile across the
  look-back, so more chunks stay in flight per SM.

    source benchmarks/device_env.sh && python benchmarks/scan1_probe.py --json /tmp/probe.json
"""
from __future__ import annotations

import argparse
import json
import math

import torch
import triton
import triton.language as tl

from seqlab.kernels.scan1.triton_scan import _NOT_READY, _pack_agg, _pack_inc, _walk


@triton.jit
def _row_probe_kernel(a_ptr, b_ptr, h_ptr, ws_ptr, L, D, NSEQ, NCH, nD,
                      CT: tl.constexpr, BD: tl.constexpr, MODE: tl.constexpr, EVICT: tl.constexpr):
    t = tl.program_id(0)
    i_d = t % nD
    rest = t // nD
    i_n = rest % NSEQ
    j = rest // NSEQ
    o_d = i_d * BD + tl.arange(0, BD)
    m_d = o_d < D
    base = (i_n * L + j * CT) * D
    h = tl.zeros([BD], tl.float32)
    if MODE == 2:
        acc_a = tl.full([BD], 1.0, tl.float32)
        acc_b = tl.zeros([BD], tl.float32)
        for s in tl.static_range(CT):
            if EVICT:
                la = tl.load(a_ptr + base + s * D + o_d, mask=m_d, other=0.0, eviction_policy="evict_last")
                bb = tl.load(b_ptr + base + s * D + o_d, mask=m_d, other=0.0, eviction_policy="evict_last")
            else:
                la = tl.load(a_ptr + base + s * D + o_d, mask=m_d, other=0.0)
                bb = tl.load(b_ptr + base + s * D + o_d, mask=m_d, other=0.0)
            a = tl.exp(la.to(tl.float32))
            acc_b = a * acc_b + bb.to(tl.float32)
            acc_a = acc_a * a
        cid = i_n * NCH + j
        wbase = ws_ptr + cid * D
        if j == 0:
            tl.store(wbase + o_d, _pack_inc(acc_b), mask=m_d)
        else:
            tl.store(wbase + o_d, _pack_agg(acc_a, acc_b), mask=m_d)
            k = tl.zeros([BD], tl.int32) + (cid - 1)
            ca = tl.full([BD], 1.0, tl.float32)
            cb = tl.zeros([BD], tl.float32)
            done = tl.where(m_d, 0, 1)
            while tl.min(done, axis=0) == 0:
                todo = done == 0
                w = tl.load(ws_ptr + k * D + o_d, mask=todo, other=_NOT_READY, volatile=True)
                ca, cb, h, k, done = _walk(w, todo, ca, cb, h, k, done, 1)
            tl.store(wbase + o_d, _pack_inc(acc_a * h + acc_b), mask=m_d)
    for s in tl.static_range(CT):
        if EVICT:
            la = tl.load(a_ptr + base + s * D + o_d, mask=m_d, other=0.0, eviction_policy="evict_first")
            bb = tl.load(b_ptr + base + s * D + o_d, mask=m_d, other=0.0, eviction_policy="evict_first")
        else:
            la = tl.load(a_ptr + base + s * D + o_d, mask=m_d, other=0.0)
            bb = tl.load(b_ptr + base + s * D + o_d, mask=m_d, other=0.0)
        a = tl.exp(la.to(tl.float32))
        if MODE == 0:
            h = a * bb.to(tl.float32)
        else:
            h = a * h + bb.to(tl.float32)
        tl.store(h_ptr + base + s * D + o_d, h.to(h_ptr.dtype.element_ty), mask=m_d)


MODES = {"copy": 0, "noback": 1, "two": 2}


def probe(la: torch.Tensor, b: torch.Tensor, ct: int, bd: int, warps: int, mode: str, evict: bool = False):
    """Run one probe kernel on ``log a``, ``b`` ``[B, T, D]`` (``T`` a multiple of ``ct``). Returns ``h``."""
    B, T, D = b.shape
    if T % ct:
        raise ValueError(f"probe: T={T} must be a multiple of CT={ct}")
    h = torch.empty_like(b)
    nch, nd = T // ct, triton.cdiv(D, bd)
    ws = torch.full((B * nch * D,), -1, device=b.device, dtype=torch.int64) if mode == "two" else h
    _row_probe_kernel[(B * nch * nd,)](la, b, h, ws, T, D, B, nch, nd, CT=ct, BD=bd, MODE=MODES[mode],
                                       EVICT=evict, num_warps=warps)
    return h


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--shape", default="8,8192,1024")
    args = ap.parse_args()
    from triton.testing import do_bench_cudagraph

    from seqlab.kernels import scan1

    B, T, D = (int(x) for x in args.shape.split(","))
    dev = "cuda"
    rows = []

    def bench(name, fn, nbytes):
        fn()
        torch.cuda.synchronize()
        try:
            ms = do_bench_cudagraph(fn, rep=100)
        except Exception as e:  # noqa: BLE001
            print(f"{name:55s} FAILED {type(e).__name__}: {str(e)[:120]}", flush=True)
            return None
        gbs = nbytes / ms / 1e6
        rows.append({"name": name, "ms": ms, "GB/s": gbs})
        print(f"{name:55s} {ms:8.4f} ms {gbs:8.0f} GB/s", flush=True)
        return ms

    for dname in args.dtypes.split(","):
        dt = getattr(torch, dname)
        es = torch.tensor([], dtype=dt).element_size()
        n3 = 3 * B * T * D * es
        la = torch.nn.functional.logsigmoid(torch.randn(B, T, D, device=dev) + 3).to(dt)
        b = torch.randn(B, T, D, device=dev).to(dt)
        out = torch.empty_like(b)
        print(f"--- {dname} B{B} T{T} D{D}", flush=True)
        bench(f"{dname} torch add (3-pass ceiling)", lambda: torch.add(la, b, out=out), n3)
        ref = scan1(None, b, log_a=la)[0]
        bench(f"{dname} scan1 default", lambda: scan1(None, b, log_a=la), n3)
        try:
            from accelerated_scan.scalar import scan as acc_scan

            fa = la.float().exp().to(dt).transpose(1, 2).contiguous()
            xa = b.transpose(1, 2).contiguous()
            bench(f"{dname} accelerated-scan", lambda: acc_scan(fa, xa), n3)
        except ImportError:
            pass
        vecs = (8, 4, 2) if es == 2 else (4, 2, 1)
        for mode in ("copy", "noback", "two"):
            for ct in (16, 32, 64):
                for vec in vecs:
                    for warps in (1, 2, 4):
                        bd = 32 * warps * vec
                        if bd > D or (mode != "two" and ct != 32):
                            continue
                        for ev in ((False, True) if mode == "two" and ct == 32 else (False,)):
                            name = f"{dname} {mode} CT{ct} BD{bd} w{warps} vec{vec}{' evict' if ev else ''}"
                            ms = bench(name, lambda: probe(la, b, ct, bd, warps, mode, ev), n3)
                            if ms is not None and mode == "two":
                                h = probe(la, b, ct, bd, warps, mode, ev)
                                e = ((h.float() - ref.float()).pow(2).mean() / ref.float().pow(2).mean()).sqrt().item()
                                ok = math.isfinite(e) and e < (1e-5 if es == 4 else 1e-2)
                                rows[-1]["rel_rmse"] = e
                                print(f"{'':55s} rel-RMS vs scan1 {e:.2e} ok={ok}", flush=True)
        del la, b, out
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
