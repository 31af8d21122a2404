"""A/B (one GPU, float32 B8 T8192 D1024 log gates, CUDA graphs): scan1's walking kernels with two-level chunk scans
(``TS`` segments a chunk across threads) against the one-level kernels they replaced, taken from git:

    git show ff459f6:kernels/scan1/triton_walk.py > benchmarks/_walk_old.py
    source benchmarks/device_env.sh && python benchmarks/walk_split_ab.py

H200, twelfth session: forward 0.1998 ms one-level, 0.1973 with ``TS = 4`` (64-step chunks); backward kernel 0.3570
against 0.3534 ms (32-step chunks); the two-level kernels at ``TS = 1`` were slower (0.2038 / 0.3691 ms).
"""
import os, sys
import torch, torch.nn.functional as F
sys.path.insert(0, "benchmarks")
from triton.testing import do_bench_cudagraph
import _walk_old as old
from seqlab.kernels.scan1.triton_launch import scan1_fwd, scan1_bwd

B, T, D = 8, 8192, 1024
os.environ["SEQLAB_SCAN1_WALK"] = "1"
la = F.logsigmoid(torch.randn(B, T, D, device="cuda"))
b = torch.randn(B, T, D, device="cuda")
do = torch.randn(B, T, D, device="cuda")


def old_fwd(ct, bc, st):
    h = torch.empty_like(b)
    old._scan1_walk_fwd_kernel[(B * D // bc,)](la, b, None, h, None, T, D, D // bc, LOG_A=True, HAS_H0=False,
        STORE_FINAL=False, REVERSE=False, CT=ct, BC=bc, VEC=1, STAGES=st, I64=False, MASK_D=False, num_warps=1)
    return h


def old_bwd(h, ct, bc, st):
    da, db = torch.empty_like(la), torch.empty_like(b)
    old._scan1_walk_bwd_kernel[(B * D // bc,)](la, None, h, do, None, da, db, None, T, D, D // bc, LOG_A=True,
        HAS_H0=False, HAS_DHT=False, REVERSE=False, CT=ct, BC=bc, VEC=1, STAGES=st, I64=False, MASK_D=False,
        num_warps=1)
    return da, db


def rel(x, y):
    return ((x - y).pow(2).mean() / y.pow(2).mean()).sqrt().item()


href = old_fwd(64, 32, 3)
daref, dbref = old_bwd(href, 32, 32, 4)
print(f"{'old fwd 64,32,1,1,3':36s} {do_bench_cudagraph(lambda: old_fwd(64, 32, 3), rep=100):.4f} ms", flush=True)
print(f"{'old bwd 32,32,1,1,4':36s} {do_bench_cudagraph(lambda: old_bwd(href, 32, 32, 4), rep=100):.4f} ms", flush=True)
for cfg in ["64,32,1,1,3,4", "32,32,1,1,4,4", "32,32,1,1,3,4", "64,32,1,1,4,4", "64,32,1,1,3,2", "128,32,1,1,2,8",
            "64,32,1,1,3,1"]:
    os.environ["SEQLAB_SCAN1_WALK_CFG"] = cfg
    h = scan1_fwd(la, b, None, None, True, False, False)[0]
    ms = do_bench_cudagraph(lambda: scan1_fwd(la, b, None, None, True, False, False), rep=100)
    print(f"{'fwd ' + cfg:36s} {ms:.4f} ms  err {rel(h, href):.1e}", flush=True)
for cfg in ["32,32,1,1,4,4", "64,32,1,1,3,4", "32,32,1,1,3,4", "16,32,1,1,6,4", "32,32,1,1,4,2", "32,32,1,1,4,1"]:
    os.environ["SEQLAB_SCAN1_WALK_BWD_CFG"] = cfg
    da, db, _ = scan1_bwd(la, None, href, do, None, None, True, False)
    ms = do_bench_cudagraph(lambda: scan1_bwd(la, None, href, do, None, None, True, False), rep=100)
    print(f"{'bwd ' + cfg:36s} {ms:.4f} ms  err {rel(da, daref):.1e} {rel(db, dbref):.1e}", flush=True)
