"""A/B of scan1's walking forward (``kernels/scan1/triton_walk.py``) against variants of its loop, on one H200-class
GPU, float32 B=8 T=8192 D=1024 log gates, from CUDA graphs: the probe kernel of ``scan1_walk_probe.py`` (no
masks), the launch path, and a kernel with a time mask (``MASK_T``), a channel mask (``MASK_D``), addresses from
rows (``ROWOF``), ``tl.cdiv`` trip counts (``CDIV``) and a compile-time row stride (``DKC``) switched on and off.
Twelfth session: a time mask cost 0.200 -> 0.290 ms, so full chunks now run unmasked (docs/results.md).

    source benchmarks/device_env.sh && python benchmarks/walk_ab.py
"""
import torch, torch.nn.functional as F, os, sys
import triton, triton.language as tl
sys.path.insert(0, "benchmarks")
from triton.testing import do_bench_cudagraph
from scan1_walk_probe import walk_fwd, _combine
from seqlab.kernels.scan1.triton_launch import scan1_fwd


@triton.jit
def _var(a_ptr, b_ptr, h_ptr, L, D, nD, CT: tl.constexpr, BC: tl.constexpr, STAGES: tl.constexpr,
         MASK_T: tl.constexpr, MASK_D: tl.constexpr, ROWOF: tl.constexpr, CDIV: tl.constexpr, DKC: tl.constexpr):
    pid = tl.program_id(0)
    i_d = pid % nD
    i_n = pid // nD
    o_d = i_d * BC + tl.arange(0, BC)[:, None] + tl.arange(0, 1)[None, :]
    m_d = o_d < D
    rows = tl.arange(0, CT)
    if DKC:
        DD: tl.constexpr = 1024
    else:
        DD = D
    h = tl.zeros([BC, 1], tl.float32)
    if CDIV:
        n = tl.cdiv(L, CT)
    else:
        n = L // CT
    for j in tl.range(0, n, num_stages=STAGES):
        p = j * CT + rows
        if ROWOF:
            offs = (i_n * L + p)[None, :, None] * DD + o_d[:, None, :]
        else:
            offs = (i_n * L + j * CT) * DD + o_d[:, None, :] + (rows * DD)[None, :, None]
        if MASK_T and MASK_D:
            mask = (p < L)[None, :, None] & m_d[:, None, :]
        elif MASK_T:
            mask = (p < L)[None, :, None]
        elif MASK_D:
            mask = m_d[:, None, :]
        else:
            mask = None
        if MASK_T or MASK_D:
            a = tl.exp(tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32))
            b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            a = tl.exp(tl.load(a_ptr + offs).to(tl.float32))
            b = tl.load(b_ptr + offs).to(tl.float32)
        b += tl.where(rows[None, :, None] == 0, a * h[:, None, :], 0.0)
        _, hs = tl.associative_scan((a, b), 1, _combine)
        tl.store(h_ptr + offs, hs, mask=mask)
        h = tl.sum(tl.where(rows[None, :, None] == CT - 1, hs, 0.0), axis=1)


def var(la, b, **k):
    B, T, D = b.shape
    h = torch.empty_like(b)
    _var[(B * D // 32,)](la, b, h, T, D, D // 32, CT=64, BC=32, STAGES=3, num_warps=1, **k)
    return h


B, T, D = 8, 8192, 1024
os.environ["SEQLAB_SCAN1_WALK"] = "1"
la = F.logsigmoid(torch.randn(B, T, D, device="cuda"))
b = torch.randn(B, T, D, device="cuda")
ref = walk_fwd(la, b, 64, 32, 1, 1, 3)
rows = [("probe 64,32,1,1,3", lambda: walk_fwd(la, b, 64, 32, 1, 1, 3)),
        ("launch scan1_fwd", lambda: scan1_fwd(la, b, None, None, True, False, False)[0])]
for mt in (0, 1):
    for md in (0, 1):
        for ro in (0, 1):
            for cd in (0, 1):
                for dk in (0, 1):
                    if (mt or md) and dk:
                        continue
                    kw = dict(MASK_T=mt, MASK_D=md, ROWOF=ro, CDIV=cd, DKC=dk)
                    rows.append((" ".join(f"{k}={v}" for k, v in kw.items()), (lambda kw=kw: var(la, b, **kw))))
for name, fn in rows:
    h = fn(); torch.cuda.synchronize()
    e = ((h - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item()
    print(f"{name:50s} {do_bench_cudagraph(fn, rep=100):.4f} ms  err {e:.1e}", flush=True)
