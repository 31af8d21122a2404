"""Probe: scan1 as one program per (sequence, channel block) walking the whole time axis, its loads software-pipelined
by Triton (``tl.range(num_stages=S)``: ``cp.async`` into shared memory on sm_80+), beside the default look-back
kernel, accelerated-scan and a three-pass torch add, in one process (GPU only).

The look-back kernels (:mod:`seqlab.kernels.scan1.triton_scan`) cut time into 32-step chunks: many short programs,
a workspace fill and a chain of look-backs. This form has none of them: each program carries its state in
registers from chunk to chunk, and the bytes in flight sit in shared memory instead of registers, so few programs
(``B * D / BD``) can still keep HBM busy. Forward and backward (the backward walks from the last chunk; ``g`` is
carried instead of ``h``). Dense, log gates, ``T % CT == 0`` only: a probe, not the op.

    source benchmarks/device_env.sh && python benchmarks/scan1_walk_probe.py --json /tmp/walk.json
"""
from __future__ import annotations

import argparse
import json
import math

import torch
import triton
import triton.language as tl


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _walk_fwd_kernel(a_ptr, b_ptr, h_ptr, L, nD, CT: tl.constexpr, BC: tl.constexpr, VEC: tl.constexpr,
                     DK: tl.constexpr, STAGES: tl.constexpr, COPY: tl.constexpr):
    pid = tl.program_id(0)
    i_d = pid % nD
    i_n = pid // nD
    o_d = i_d * (BC * VEC) + tl.arange(0, BC)[:, None] * VEC + tl.arange(0, VEC)[None, :]
    rows = tl.arange(0, CT)
    offs = o_d[:, None, :] + (rows * DK)[None, :, None]
    h = tl.zeros([BC, VEC], tl.float32)
    for j in tl.range(0, L // CT, num_stages=STAGES):
        base = (i_n * L + j * CT) * DK
        a = tl.exp(tl.load(a_ptr + base + offs).to(tl.float32))
        b = tl.load(b_ptr + base + offs).to(tl.float32)
        if COPY:
            hs = a * b
        else:
            b += tl.where(rows[None, :, None] == 0, a * h[:, None, :], 0.0)
            _, hs = tl.associative_scan((a, b), 1, _combine)
            h = tl.sum(tl.where(rows[None, :, None] == CT - 1, hs, 0.0), axis=1)
        tl.store(h_ptr + base + offs, hs.to(h_ptr.dtype.element_ty))


@triton.jit
def _walk_bwd_kernel(la_ptr, h_ptr, do_ptr, da_ptr, db_ptr, L, nD, CT: tl.constexpr, BC: tl.constexpr,
                     VEC: tl.constexpr, DK: tl.constexpr, STAGES: tl.constexpr):
    """``g_p = do_p + a_{p+1} g_{p+1}``, ``db = g``, ``d log a_p = g_p h_{p-1} a_p`` (no h0: ``h_{-1} = 0``)."""
    pid = tl.program_id(0)
    i_d = pid % nD
    i_n = pid // nD
    o_d = i_d * (BC * VEC) + tl.arange(0, BC)[:, None] * VEC + tl.arange(0, VEC)[None, :]
    rows = tl.arange(0, CT)  # tile row 0 is the chunk's last step
    offs = o_d[:, None, :] + ((CT - 1 - rows) * DK)[None, :, None]
    g = tl.zeros([BC, VEC], tl.float32)
    nch = L // CT
    for jj in tl.range(0, nch, num_stages=STAGES):
        j = nch - 1 - jj
        p = j * CT + CT - 1 - rows  # descending positions
        base = (i_n * L + j * CT) * DK
        do = tl.load(do_ptr + base + offs).to(tl.float32)
        m_next = (p + 1 < L)[None, :, None]
        gate = tl.exp(tl.load(la_ptr + base + DK + offs, mask=m_next, other=float("-inf")).to(tl.float32))
        m_prev = (p >= 1)[None, :, None]
        hp = tl.load(h_ptr + base - DK + offs, mask=m_prev, other=0.0).to(tl.float32)
        a_here = tl.exp(tl.load(la_ptr + base + offs).to(tl.float32))
        do += tl.where(rows[None, :, None] == 0, gate * g[:, None, :], 0.0)
        _, gs = tl.associative_scan((gate, do), 1, _combine)
        g = tl.sum(tl.where(rows[None, :, None] == CT - 1, gs, 0.0), axis=1)
        tl.store(db_ptr + base + offs, gs.to(db_ptr.dtype.element_ty))
        tl.store(da_ptr + base + offs, (gs * hp * a_here).to(da_ptr.dtype.element_ty))


def walk_fwd(la, b, ct, bc, vec, warps, stages, copy=False):
    B, T, D = b.shape
    assert T % ct == 0 and D % (bc * vec) == 0
    h = torch.empty_like(b)
    nd = D // (bc * vec)
    _walk_fwd_kernel[(B * nd,)](la, b, h, T, nd, CT=ct, BC=bc, VEC=vec, DK=D, STAGES=stages, COPY=copy,
                                num_warps=warps)
    return h


def walk_bwd(la, h, do, ct, bc, vec, warps, stages):
    B, T, D = h.shape
    assert T % ct == 0 and D % (bc * vec) == 0
    da, db = torch.empty_like(la), torch.empty_like(h)
    nd = D // (bc * vec)
    _walk_bwd_kernel[(B * nd,)](la, h, do, da, db, T, nd, CT=ct, BC=bc, VEC=vec, DK=D, STAGES=stages,
                                num_warps=warps)
    return da, db


def _rel(x, y):
    return ((x.float() - y.float()).pow(2).mean() / y.float().pow(2).mean().clamp_min(1e-30)).sqrt().item()


CONFIGS = [  # (CT, BC, VEC, warps, stages)
    (32, 32, 1, 1, 1), (32, 32, 1, 1, 2), (32, 32, 1, 1, 3), (32, 32, 1, 1, 4), (32, 32, 1, 1, 6),
    (16, 32, 1, 1, 4), (16, 32, 1, 1, 8), (64, 32, 1, 1, 3), (64, 32, 1, 1, 4),
    (32, 16, 1, 1, 4), (32, 8, 1, 1, 4), (64, 16, 1, 1, 3), (32, 32, 2, 1, 4), (32, 16, 2, 1, 4),
    (32, 64, 1, 2, 4), (32, 32, 1, 2, 4),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--shape", default="8,8192,1024")
    ap.add_argument("--configs", default=None, help="CT,BC,VEC,W,S;... instead of the built-in list")
    ap.add_argument("--no-bwd", action="store_true")
    args = ap.parse_args()
    from triton.testing import do_bench_cudagraph

    from seqlab.kernels import scan1

    cfgs = CONFIGS if not args.configs else [tuple(int(x) for x in c.split(",")) for c in args.configs.split(";")]
    B, T, D = (int(x) for x in args.shape.split(","))
    dev = "cuda"
    rows = []
    print(f"device {torch.cuda.get_device_name()}", flush=True)

    def bench(name, fn, nbytes, **extra):
        try:
            fn()
            torch.cuda.synchronize()
            ms = do_bench_cudagraph(fn, rep=100)
        except Exception as e:  # noqa: BLE001
            print(f"{name:50s} FAILED {type(e).__name__}: {str(e)[:160]}", flush=True)
            return None
        gbs = nbytes / ms / 1e6
        rows.append({"name": name, "ms": ms, "GB/s": gbs, **extra})
        print(f"{name:50s} {ms:8.4f} ms {gbs:8.0f} GB/s {extra if extra else ''}", flush=True)
        return ms

    for dname in args.dtypes.split(","):
        dt = getattr(torch, dname)
        es = torch.tensor([], dtype=dt).element_size()
        n3, n5 = 3 * B * T * D * es, 5 * B * T * D * es
        g = torch.Generator(device=dev).manual_seed(0)
        la = torch.nn.functional.logsigmoid(torch.randn(B, T, D, device=dev, generator=g) + 3).to(dt)
        b = torch.randn(B, T, D, device=dev, generator=g).to(dt)
        do = torch.randn(B, T, D, device=dev, generator=g).to(dt)
        out = torch.empty_like(b)
        print(f"--- {dname} B{B} T{T} D{D}", flush=True)
        bench(f"{dname} torch add (3-pass ceiling)", lambda: torch.add(la, b, out=out), n3)
        bench(f"{dname} torch copy (2-pass)", lambda: out.copy_(b), 2 * B * T * D * es)
        # oracle: scan1's default path in float32 (itself tested against the naive loop)
        la32, b32 = la.float().requires_grad_(), b.float().requires_grad_()
        ref = scan1(None, b32, log_a=la32)[0]
        ref.backward(do.float())
        ref_dla, ref_db = la32.grad, b32.grad
        ref = ref.detach()
        bench(f"{dname} scan1 default fwd", lambda: scan1(None, b, log_a=la), n3)
        from seqlab.kernels.scan1.triton_launch import scan1_bwd
        hdef = scan1(None, b, log_a=la)[0]
        bench(f"{dname} scan1 default bwd kernel", lambda: scan1_bwd(la, None, hdef, do, None, None, True, False), n5)
        try:
            from accelerated_scan.scalar import scan as acc_scan

            fa = la.float().exp().to(dt).transpose(1, 2).contiguous()
            xa = b.transpose(1, 2).contiguous()
            bench(f"{dname} accelerated-scan fwd", lambda: acc_scan(fa, xa), n3)
        except ImportError:
            pass
        for ct, bc, vec, w, st in cfgs:
            tag = f"CT{ct} BC{bc} VEC{vec} w{w} S{st}"
            if D % (bc * vec) or T % ct:
                continue
            h = None
            try:
                h = walk_fwd(la, b, ct, bc, vec, w, st)
                e = _rel(h, ref)
            except Exception as ex:  # noqa: BLE001
                print(f"{dname} walk fwd {tag} FAILED {type(ex).__name__}: {str(ex)[:160]}", flush=True)
                continue
            ok = math.isfinite(e) and e < (1e-5 if es == 4 else 1e-2)
            bench(f"{dname} walk fwd {tag}", lambda: walk_fwd(la, b, ct, bc, vec, w, st), n3, rel=e, ok=ok)
            if st == 4 and ct == 32:
                bench(f"{dname} walk copy {tag}", lambda: walk_fwd(la, b, ct, bc, vec, w, st, True), n3)
            if not args.no_bwd:
                try:
                    da, db = walk_bwd(la, h, do, ct, bc, vec, w, st)
                    e1, e2 = _rel(da, ref_dla), _rel(db, ref_db)
                except Exception as ex:  # noqa: BLE001
                    print(f"{dname} walk bwd {tag} FAILED {type(ex).__name__}: {str(ex)[:160]}", flush=True)
                    continue
                okb = all(math.isfinite(x) and x < (1e-5 if es == 4 else 1e-2) for x in (e1, e2))
                bench(f"{dname} walk bwd {tag}", lambda: walk_bwd(la, h, do, ct, bc, vec, w, st), n5,
                      rel_da=e1, rel_db=e2, ok=okb)
        del la, b, do, out
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
