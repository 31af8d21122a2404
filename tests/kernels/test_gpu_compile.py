"""Every Triton kernel of every op builds for an sm_90 GPU (see ``gpu_compile.py``): the launches of small
interpreter runs (forward and backward, in float32 and in bfloat16 (recorded from float16 calls); dense, varlen,
initial / final state, reverse) are compiled to cubins on the CPU, with GPU-like warps and stages. The kernels do
not execute (``record_launches(execute=False)``); the interpreter tests check their values. A kernel that only the GPU compiler rejects fails here.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from tests.kernels import gpu_compile as gc


def _grads(out, inputs):
    ts = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
    loss = sum((o.float() * torch.randn_like(o.float())).sum() for o in ts if o.requires_grad)
    torch.autograd.grad(loss, [x for x in inputs if x.requires_grad], allow_unused=True)


def _leaves(*xs):
    return [x.detach().clone().requires_grad_() if x is not None and x.is_floating_point() else x for x in xs]


def _flat(out):
    res = []
    for o in out if isinstance(out, (tuple, list)) else [out]:
        if isinstance(o, (tuple, list)):
            res += _flat(o)
        elif isinstance(o, torch.Tensor):
            res.append(o)
    return res


def _run(fn, *xs):
    xs = _leaves(*xs)
    out = fn(*xs)
    _grads(_flat(out), [x for x in xs if isinstance(x, torch.Tensor)])


CU = torch.tensor([0, 1, 40, 70], dtype=torch.int32)
T, TV = 70, 70  # dense length; packed length of CU


def _scan1(dt, monkeypatch):
    from seqlab.kernels import scan1
    B, D = 2, 16
    # ticket order with the late poll, program-id order with the early poll, and tiles of 2 and 4 channels a
    # thread (the GPU forward default, SEQLAB_SCAN1_CFG)
    for ticket, early, cfg in ((1, 0, ""), (0, 1, ""), (0, 1, "32,64,1"), (0, 1, "16,128,1")):
        monkeypatch.setenv("SEQLAB_SCAN1_TICKET", str(ticket))
        monkeypatch.setenv("SEQLAB_SCAN1_EARLY_POLL", str(early))
        if cfg:
            monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
        else:
            monkeypatch.delenv("SEQLAB_SCAN1_CFG", raising=False)
        a, b, h0 = torch.rand(B, T, D).to(dt), torch.randn(B, T, D).to(dt), torch.randn(B, D)
        _run(lambda b_, la: scan1(None, b_, log_a=la, backend="triton"), b, a.float().log().to(dt))
        _run(lambda a_, b_, h: scan1(a_, b_, initial_state=h, output_final_state=True, reverse=True,
                                     backend="triton"), a, b, h0)
        _run(lambda a_, b_, h: scan1(a_, b_, initial_state=h, output_final_state=True, cu_seqlens=CU,
                                     backend="triton"), a[:1], b[:1], torch.randn(3, D))
    # persistent forward (triton_persist): full tiles of two channels a thread (PACK in 16-bit), and masked tiles
    monkeypatch.setenv("SEQLAB_SCAN1_PERSIST", "2")
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "32,64,1")
    a, b = torch.rand(B, 64, 64).to(dt), torch.randn(B, 64, 64).to(dt)
    _run(lambda b_, la: scan1(None, b_, log_a=la, backend="triton"), b, a.float().log().to(dt))
    a, b, h0 = torch.rand(B, T, D).to(dt), torch.randn(B, T, D).to(dt), torch.randn(B, D)
    _run(lambda a_, b_, h: scan1(a_, b_, initial_state=h, output_final_state=True, reverse=True, backend="triton"),
         a, b, h0)
    monkeypatch.setenv("SEQLAB_SCAN1_PERSIST", "0")
    monkeypatch.delenv("SEQLAB_SCAN1_CFG", raising=False)
    # the walking kernels (triton_walk), both gate forms, h0 / final state, both directions
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "1")
    a, b, h0 = torch.rand(B, T, D).to(dt), torch.randn(B, T, D).to(dt), torch.randn(B, D)
    _run(lambda b_, la: scan1(None, b_, log_a=la, backend="triton"), b, a.float().log().to(dt))
    _run(lambda a_, b_, h: scan1(a_, b_, initial_state=h, output_final_state=True, reverse=True, backend="triton"),
         a, b, h0)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "0")


def _linear_attn(op, dt, gated_vec):
    H, K, V = 2, 16, 16
    mk = lambda B, t: (torch.randn(B, t, H, K).to(dt), torch.randn(B, t, H, K).to(dt), torch.randn(B, t, H, V).to(dt),
                       (-torch.rand(B, t, H, K) if gated_vec else -torch.rand(B, t, H)).to(dt))
    q, k, v, g = mk(2, T)
    modes = ["chunk", "fused_recurrent"]
    for mode in modes:
        _run(lambda *x: op(*x, mode=mode, backend="triton"), q, k, v, g)
        _run(lambda q_, k_, v_, g_, h: op(q_, k_, v_, g_, initial_state=h, output_final_state=True, reverse=True,
                                           mode=mode, backend="triton"), q, k, v, g, torch.randn(2, H, K, V))
    q, k, v, g = mk(1, TV)
    _run(lambda q_, k_, v_, g_, h: op(q_, k_, v_, g_, initial_state=h, output_final_state=True, cu_seqlens=CU,
                                       backend="triton"), q, k, v, g, torch.randn(3, H, K, V))


def _simple_gla(dt):
    from seqlab.kernels import simple_gla
    _linear_attn(simple_gla, dt, False)
    # grouped q/k heads (GQA): HK = 1 q/k head shared by H = 2 value heads (constexpr HK != H, grouped dq/dk sum)
    K, V = 16, 16
    mk = lambda B, t: (torch.randn(B, t, 1, K).to(dt), torch.randn(B, t, 1, K).to(dt), torch.randn(B, t, 2, V).to(dt),
                       (-torch.rand(B, t, 2)).to(dt))
    for mode in ("chunk", "fused_recurrent"):
        _run(lambda q_, k_, v_, g_, h: simple_gla(q_, k_, v_, g_, initial_state=h, output_final_state=True,
                                                  mode=mode, backend="triton"), *mk(2, T), torch.randn(2, 2, K, V))
    _run(lambda q_, k_, v_, g_, h: simple_gla(q_, k_, v_, g_, initial_state=h, output_final_state=True, cu_seqlens=CU,
                                              reverse=True, backend="triton"), *mk(1, TV), torch.randn(3, 2, K, V))


def _gla(dt):
    from seqlab.kernels import gla
    _linear_attn(gla, dt, True)


def _delta_rule(dt):
    from seqlab.kernels import delta_rule
    H, K, V = 2, 16, 16
    for B, t, cu in ((2, T, None), (1, TV, CU)):
        q, k, v = (torch.randn(B, t, H, K).to(dt), torch.randn(B, t, H, K).to(dt), torch.randn(B, t, H, V).to(dt))
        beta, g = torch.rand(B, t, H).to(dt), (-torch.rand(B, t, H)).to(dt)
        h0 = torch.randn(3 if cu is not None else B, H, K, V)
        _run(lambda *x: delta_rule(*x, qk_l2norm=True, backend="triton", cu_seqlens=cu), q, k, v, beta)
        _run(lambda q_, k_, v_, b_, g_, h: delta_rule(q_, k_, v_, b_, g_, allow_neg_eigval=True, initial_state=h,
                                                      output_final_state=True, cu_seqlens=cu, backend="triton"),
             q, k, v, beta, g, h0)


def _prefix_attention(dt, monkeypatch):
    from seqlab.kernels import prefix_attention
    V = 16
    # "lookback exact": every chunk on the exact in-chunk weights (SEQLAB_PREFIX_ATTN_FAST=0, the benchmark baseline)
    # "scan": the scan forward with the scan backward (SEQLAB_PREFIX_ATTN_BWD=scan); the other forms, the walk backward
    for form in ("fused", "chunked", "lookback", "lookback early", "lookback exact", "scan"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", form.split()[0])
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "scan" if form == "scan" else "walk")
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_TICKET", "0" if "early" in form else "1")
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_EARLY_POLL", "1" if "early" in form else "0")
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", "0" if "exact" in form else "1")
        s, v = torch.randn(2, T, 2) * 5, torch.randn(2, T, 2, V).to(dt)
        _run(lambda s_, v_: prefix_attention(s_, v_, output_final_state=True, backend="triton"), s, v)
        _run(lambda s_, v_: prefix_attention(s_, v_, reverse=True, backend="triton"), s, v)
        s, v = torch.randn(1, TV, 2) * 5, torch.randn(1, TV, 2, V).to(dt)
        _run(lambda s_, v_: prefix_attention(s_, v_, cu_seqlens=CU, output_final_state=True, backend="triton"), s, v)
        if form == "scan":  # initial state (its gradients), and value tiles inside one head (V = 32, BD = 32)
            h0 = (torch.randn(2, 2), torch.randn(2, 2, V), torch.rand(2, 2) + 0.5)
            s, v = torch.randn(2, T, 2) * 5, torch.randn(2, T, 2, V).to(dt)
            _run(lambda s_, v_, m, u, w: prefix_attention(s_, v_, initial_state=(m, u, w), output_final_state=True,
                                                          backend="triton"), s, v, *h0)
            s, v = torch.randn(2, T, 2) * 5, torch.randn(2, T, 2, 32).to(dt)
            _run(lambda s_, v_: prefix_attention(s_, v_, backend="triton"), s, v)
            # the inline score pass and the persistent value scan (full tiles of two channels a thread: PACK)
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", "16,64,1")
            for lse, persist in (("inline", "0"), ("inline", "2"), ("chunks", "2")):
                monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", lse)
                monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_PERSIST", persist)
                sp, vp = torch.randn(2, 64, 2) * 5, torch.randn(2, 64, 2, 32).to(dt)
                _run(lambda s_, v_, m, u, w: prefix_attention(s_, v_, initial_state=(m, u, w),
                                                              output_final_state=True, backend="triton"),
                     sp, vp, h0[0], torch.randn(2, 2, 32), h0[2])
            for k in ("SEQLAB_PREFIX_ATTN_SCAN_CFG", "SEQLAB_PREFIX_ATTN_SCAN_LSE", "SEQLAB_PREFIX_ATTN_SCAN_PERSIST"):
                monkeypatch.delenv(k)
            # the walking value scan (SEQLAB_PREFIX_ATTN_SCAN_WALK=1): with an initial state, one-head blocks and not
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "1")
            _run(lambda s_, v_: prefix_attention(s_, v_, output_final_state=True, backend="triton"), s, v)
            s, v = torch.randn(2, T, 2) * 5, torch.randn(2, T, 2, V).to(dt)
            _run(lambda s_, v_, m, u, w: prefix_attention(s_, v_, initial_state=(m, u, w), output_final_state=True,
                                                          backend="triton"), s, v, *h0)
            # the fused walk (SEQLAB_PREFIX_ATTN_SCAN_WALK=fused), with and without an initial state, reversed
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "fused")
            _run(lambda s_, v_, m, u, w: prefix_attention(s_, v_, initial_state=(m, u, w), output_final_state=True,
                                                          backend="triton"), s, v, *h0)
            _run(lambda s_, v_: prefix_attention(s_, v_, reverse=True, backend="triton"), s, v)
            s, v = torch.randn(1, TV, 2) * 5, torch.randn(1, TV, 2, V).to(dt)  # packed
            _run(lambda s_, v_: prefix_attention(s_, v_, cu_seqlens=CU, output_final_state=True, backend="triton"),
                 s, v)
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FUSED_SREP", "1")  # the scores in the values' layout
            _run(lambda s_, v_: prefix_attention(s_, v_, cu_seqlens=CU, output_final_state=True, backend="triton"),
                 s, v)
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FUSED_SREP", "2")
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "0")


def _causal_conv1d(dt):
    from seqlab.kernels import causal_conv1d
    C, W = 24, 4
    x, w, bias = torch.randn(2, T, C).to(dt), torch.randn(C, W), torch.randn(C)
    _run(lambda x_, w_, b_: causal_conv1d(x_, w_, b_, activation="silu", backend="triton"), x, w, bias)
    _run(lambda x_, w_, c: causal_conv1d(x_, w_, cache=c, backend="triton"), x, w.to(dt), torch.randn(2, W - 1, C).to(dt))
    _run(lambda x_, w_, b_, c: causal_conv1d(x_, w_, b_, activation="silu", cache=c, cu_seqlens=CU, backend="triton"),
         x[:1], w, bias, torch.randn(3, W - 1, C).to(dt))


def _rms_norm(dt):
    from seqlab.kernels import rms_norm
    x, z, w = torch.randn(T, 48).to(dt), torch.randn(T, 48).to(dt), torch.rand(48)
    _run(lambda x_, w_: rms_norm(x_, w_, backend="triton"), x, w)
    for nbg in (True, False):
        _run(lambda x_, w_, z_: rms_norm(x_, w_, z_, norm_before_gate=nbg, backend="triton"), x, w, z)


OPS = {"scan1": _scan1, "simple_gla": _simple_gla, "gla": _gla, "delta_rule": _delta_rule,
       "prefix_attention": _prefix_attention, "causal_conv1d": _causal_conv1d, "rms_norm": _rms_norm}


@pytest.mark.parametrize("op", sorted(OPS))
def test_kernels_compile_for_sm90(op, monkeypatch):
    specs: list = []
    with gc.record_launches(specs):
        for dt in (torch.float32, torch.float16):
            fn = OPS[op]
            fn(dt, monkeypatch) if op in ("prefix_attention", "scan1") else fn(dt)
    assert specs, f"{op}: no Triton launch was recorded (did the op take the PyTorch path?)"
    half = [x for x in specs if "*fp16" in x["signature"].values()]
    specs = gc.gpu_options(gc.unique([x for x in specs if x not in half] + gc.half_to_bf16(half)))
    errors = gc.compile_specs(specs)
    assert not errors, f"{op}: {len(errors)} of {len(specs)} launches do not compile for sm_90:\n" + "\n".join(errors)


def test_the_compile_check_catches_a_shape_rebinding(tmp_path, monkeypatch):
    """The check itself: the defect fixed in commit 9710d0e (a tile name rebound to another shape inside a runtime
    ``if``) fails to compile here, and the fixed kernel compiles."""
    src = '''
import triton
import triton.language as tl


@triton.jit
def bad(x, y, BT: tl.constexpr, BK: tl.constexpr):
    v = tl.load(x + tl.arange(0, BT))
    tl.store(y + tl.arange(0, BT), v)
    if tl.program_id(0) == 0:
        v = tl.load(x + tl.arange(0, BK))
        tl.store(y + tl.arange(0, BK), v)


@triton.jit
def good(x, y, BT: tl.constexpr, BK: tl.constexpr):
    v = tl.load(x + tl.arange(0, BT))
    tl.store(y + tl.arange(0, BT), v)
    if tl.program_id(0) == 0:
        tail = tl.load(x + tl.arange(0, BK))
        tl.store(y + tl.arange(0, BK), tail)
'''
    mod = tmp_path / "sm90_probe_kernels.py"
    mod.write_text(src)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec = {"module": "sm90_probe_kernels", "signature": {"x": "*fp32", "y": "*fp32", "BT": "constexpr",
                                                         "BK": "constexpr"},
            "constexprs": {"BT": 64, "BK": 4}, "options": {"num_warps": 4}}
    errors = gc.compile_specs([{**spec, "name": "bad"}, {**spec, "name": "good"}], workers=1)
    assert len(errors) == 1 and "sm90_probe_kernels.bad" in errors[0] and "redefines" in errors[0], errors


_LAYOUT_PROBE = r'''
import re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from seqlab.kernels.scan1 import triton_launch as tla, triton_scan as ts
cfg, _, lbw = sys.argv[1].partition("@")
ct, bd, w = (int(x) for x in cfg.split(","))
bc, vec = tla._lanes(bd, w)
ptr = lambda n: {k: "*bf16" for k in n.split()}
fwd = {**ptr("a_ptr b_ptr h_ptr"), "h0_ptr": "*fp32", "ht_ptr": "*fp32", "seq_ptr": "*i32", "cu_ptr": "*i32",
       "ws_ptr": "*i64", "cnt_ptr": "*i64"}
bwd = {**ptr("a_ptr h_ptr do_ptr da_ptr db_ptr"), "h0_ptr": "*fp32", "dht_ptr": "*fp32", "dh0_ptr": "*fp32",
       "seq_ptr": "*i32", "cu_ptr": "*i32", "ws_ptr": "*i64", "cnt_ptr": "*i64"}
ints = {k: "i32" for k in "L D NSEQ NCH nD".split()}
common = dict(LOG_A=True, IS_VARLEN=True, REVERSE=False, CT=ct, BC=bc, VEC=vec, NO_INCLUSIVE=False,
              I64=False)
kern = [(ts._scan1_fwd_kernel, fwd, dict(HAS_H0=True, STORE_FINAL=True, TICKET=True, EARLY=True, ABLATE=0,
                                          TWO=True, OPAQUE=True, HINTS=3, FLAT=False, DK=0, LBW=int(lbw or 1))),
        (ts._scan1_bwd_kernel, bwd, dict(HAS_H0=True, HAS_DHT=True, TICKET=True, EARLY=True))]
for fn, sig, extra in kern:
    names = fn.arg_names
    full = {n: sig.get(n, ints.get(n, "constexpr")) for n in names}
    src = ASTSource(fn, full, {**common, **extra})
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=w, num_stages=1))
    ttgir = k.asm["ttgir"]
    defs = dict(re.findall(r"^(#\w+) = (#ttg\.\w+<.*>)$", ttgir, re.M))
    for ln in ttgir.splitlines():
        if "isVolatile = true" in ln:
            shape, lay = re.search(r": tensor<([\dx]+)x!tt\.ptr<i64>, (#\w+)>", ln).groups()
            print(fn.__name__, shape, defs[lay])
'''


@pytest.mark.parametrize("cfg", ["32,32,1", "16,32,1", "16,64,2", "32,64,1", "16,128,1", "32,64,1@4", "16,128,1@8"])
def test_scan1_one_trip_look_back_layouts_hold_each_channel_once(cfg):
    """The look-back (each channel walking on the words it loaded itself, ``BC = 32 * num_warps``) relies on every channel's
    ``[BC, VEC]`` vector living in exactly one thread (see ``triton_scan._look_back``). Compile every scan1 kernel for
    sm_90 at such tiles (1, 2 and 4 channels a thread) and check the layout of every workspace (volatile) load: in
    every dimension its threads and warps cover no more than the vector's extent, so no element has two owners
    (``cfg@W``: the forward with a look-back window of ``W`` chunks, ``[BC, VEC, W]`` word loads).
    The forward is built as the GPU runs it by default: two phases, addresses through inline asm (``OPAQUE``, which
    the interpreter runs cannot record)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _LAYOUT_PROBE, cfg], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert {ln.split()[0] for ln in lines} == {"_scan1_fwd_kernel", "_scan1_bwd_kernel"}, out.stdout
    for ln in lines:  # e.g. "_scan1_fwd_kernel 32x2 #ttg.blocked<{sizePerThread = [1, 2], threadsPerWarp = [32, 1], ...}>"
        _, shape, lay = ln.split(" ", 2)
        dims = [int(x) for x in shape.split("x")]
        assert lay.startswith("#ttg.blocked<"), f"not a plain blocked layout, cannot rule out replication: {ln}"
        per = [[int(x) for x in lay.split(f"{key} = [")[1].split("]")[0].split(",")]
               for key in ("sizePerThread", "threadsPerWarp", "warpsPerCTA")]
        assert all(len(p) == len(dims) for p in per), ln
        assert all(per[0][i] * per[1][i] * per[2][i] <= dims[i] for i in range(len(dims))), ln


_WALK_PROBE = r"""
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from seqlab.kernels.scan1.triton_walk import _scan1_walk_bwd_kernel, _scan1_walk_fwd_kernel

dt = sys.argv[1]
ct, bc, vec, w, st, ts, seg = (int(x) for x in sys.argv[2].split(","))
common = {"CT": ct, "BC": bc, "VEC": vec, "STAGES": st, "I64": 0, "LOG_A": 1, "HAS_H0": 1, "REVERSE": 0, "MASK_D": 0,
          "TS": ts, "SEGSCAN": seg}
for fn, ptrs, flags in ((_scan1_walk_fwd_kernel, ["a_ptr", "b_ptr", "h0_ptr", "h_ptr", "ht_ptr"], {"STORE_FINAL": 1}),
                        (_scan1_walk_bwd_kernel, ["a_ptr", "h0_ptr", "h_ptr", "do_ptr", "dht_ptr", "da_ptr", "db_ptr",
                                                  "dh0_ptr"], {"HAS_DHT": 1})):
    f32 = {"h0_ptr", "ht_ptr", "dht_ptr", "dh0_ptr"}
    sig = {n: ("*fp32" if n in f32 else "*" + dt) for n in ptrs}
    sig.update({"L": "i32", "D": "i32", "nD": "i32"})
    consts = {**common, **flags}
    sig.update({k: "constexpr" for k in consts})
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(len(ptrs) + 3)}  # pointers, L, D, nD (as at D = 1024)
    k = triton.compile(ASTSource(fn, sig, consts, attrs), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": w, "num_stages": st})
    print(fn.__name__, k.asm["ttgir"].count("async_copy_global_to_local"), k.metadata.shared)
"""


_PA_WALK_PROBE = r"""
import sys
sys.path.insert(0, "benchmarks")
import scan1_walk_compile_counts as c
from seqlab.kernels.prefix_attention.triton_lin_walk import _pa_fused_walk_kernel

dt = sys.argv[1]
ct, bc, vec, w, st, ts, seg = (int(x) for x in sys.argv[2].split(","))
tile = dict(H=16, V=128, HAS_H0=1, CT=ct, BC=bc, VEC=vec, STAGES=st, TS=ts, I64=0, MASK_D=0, SEGSCAN=seg, cu=None)
ptx, ttgir, regs, _ = c._build(_pa_fused_walk_kernel, c.pa_fused_sig(dt), tile, c.PA_FUSED_DIV, w)
print(ttgir.count("async_copy_global_to_local"), ptx.count("cp.async.cg.shared.global [") + ptx.count(
    "cp.async.ca.shared.global ["), " | ".join(regs))
"""


@pytest.mark.parametrize("dt,cfg", [("bf16", "64,32,1,1,3,8,1"), ("fp32", "64,32,1,1,5,4,0")])
def test_prefix_attention_fused_walk_loads_are_pipelined(dt, cfg):
    """The fused walk (``SEQLAB_PREFIX_ATTN_SCAN_WALK=fused``) compiled for sm_90 at its default tiles: both loop
    loads (the values and the head's scores) become ``async_copy_global_to_local`` copies into shared memory (the
    pipelined loop that the walking form needs to keep HBM busy), and ``ptxas`` fits it without spills."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _PA_WALK_PROBE, dt, cfg], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ttgir_copies, ptx_copies = (int(x) for x in out.stdout.split()[:2])
    assert ttgir_copies >= 2 and ptx_copies > 0, out.stdout
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill", out.stdout)]
    assert spills and not any(spills), out.stdout


@pytest.mark.parametrize("dt,cfg", [("fp32", "64,32,1,1,3,4,0"), ("fp32", "32,32,1,1,4,4,0"),
                                    ("fp32", "64,32,1,1,3,4,1"), ("bf16", "64,32,1,1,3,8,1"),
                                    ("bf16", "64,32,1,1,4,8,1")])
def test_scan1_walking_loads_are_pipelined(dt, cfg):
    """The walking kernels rely on Triton's software pipeliner to keep HBM busy with two programs an SM: compiled
    for sm_90 at the default tiles (``_walk_config``), every loop load (forward: ``a``, ``b``; backward: ``do``, the
    next gate, ``h_{p-1}``, the gate) must become an ``async_copy_global_to_local`` into shared memory. A Triton
    upgrade that stops pipelining non-dot loads fails here instead of silently halving the bandwidth. (bf16 tiles of
    one channel a thread in the one-level ``[BC, CT, VEC]`` tiles loaded 2 bytes, below ``cp.async``'s 4, and were
    not pipelined; the ``[BC, TS, TI, VEC]`` tiles lay bf16 out as 8 channels a thread, 16-byte copies: the 16-bit
    defaults, forward ``64,32,1,1,4,8`` and backward ``64,32,1,1,3,8``.)"""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _WALK_PROBE, dt, cfg], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = {ln.split()[0]: (int(ln.split()[1]), int(ln.split()[2])) for ln in out.stdout.splitlines()}
    assert got["_scan1_walk_fwd_kernel"][0] >= 2 and got["_scan1_walk_fwd_kernel"][1] > 0, out.stdout
    assert got["_scan1_walk_bwd_kernel"][0] >= 4 and got["_scan1_walk_bwd_kernel"][1] > 0, out.stdout


_FLOOR_PROBE = r"""
import sys
sys.path.insert(0, "benchmarks")
import scan1_walk_compile_counts as c
print("\n".join(c.counts("fp32", "64,32,1,1,3,4,0")))
"""


def test_issue_floor_reads_the_walking_loop_from_sass():
    """``scan1_walk_compile_counts.py``'s SASS loop count (``nvdisasm`` on the sm_90 cubin) and issue floor: scan1's
    float32 walking kernels have one large loop each (the pipelined chunk loop; 64 steps of 4 channels a thread need
    hundreds of instructions), and the floor is ``trips x instructions / clock`` against the copy time."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _FLOOR_PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    floors = re.findall(r"loop (\d+) instr/trip x (\d+) trips, (\d+) warps/SM: issue floor ([\d.]+) us vs copy "
                        r"([\d.]+) us \(([\d.]+)x\)", out.stdout)
    assert len(floors) == 2, out.stdout  # forward and backward
    for n, trips, warps, issue, copy, ratio in floors:
        assert 300 < int(n) < 5000 and int(trips) == 8192 // 64 and int(warps) == 2, out.stdout
        assert abs(float(issue) - int(trips) * int(n) / 1980) < 0.1, out.stdout  # us at 1.98 GHz
        assert abs(float(ratio) - float(issue) / float(copy)) < 0.01 and float(ratio) < 1, out.stdout
    assert len(re.findall(r"SASS loops \[\d+\]; main: .*MUFU", out.stdout)) == 2, out.stdout  # one loop, exp in it


def test_lookback_compile_counts_rows():
    """``benchmarks/lookback_compile_counts.py`` builds the look-back forwards for sm_90 as launches at the issue
    shapes would be specialised, and reads registers, spills and SASS counts: the default 32x128x2 bf16 tiles fit in
    128 registers without spills (two-warp programs, eight an SM), and the persistent forms pay for the prefetched
    tile in registers."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "benchmarks/lookback_compile_counts.py", "--tiles", "32,128,2"], env=env,
                         capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {m[0].strip(): (int(m[1]), int(m[2]), int(m[3])) for m in re.findall(
        r"^(.+?)\s+32,128,2\s+(\d+) regs\s+(\d+) B spilled\s+(\d+) instr", out.stdout, re.M)}
    assert len(rows) == 6, out.stdout
    one, persist = rows["scan1 fwd, one tile a program"], rows["scan1 fwd, persistent"]
    pa, pa_inline = rows["pa value scan, one tile a program"], rows["pa value scan, inline, one tile a program"]
    assert one[0] <= 128 and one[1] == 0 and pa[0] <= 128 and pa[1] == 0, rows
    assert persist[0] > one[0] and rows["pa value scan, persistent"][0] > pa[0], rows
    assert pa_inline[2] > pa[2] and all(r[2] > 300 for r in rows.values()), rows


def test_four_channel_lookback_tiles_convert_no_layouts():
    """Tiles of four bf16 channels a thread (8-byte loads; ``VEC = 4``: 16,256,2 is ``CT = 16``, ``BD = 256``, two
    warps) hold 32 bytes of workspace words a thread. Triton's coalescing pass split such accesses over two threads
    and converted them to and from the tiles' layout through shared memory at every workspace access (17 barriers
    in scan1's forward); ``triton_scan._ws_chans`` hides their contiguity, so the forwards have no more barriers
    than the two-channel default tile."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "benchmarks/lookback_compile_counts.py", "--tiles", "32,128,2", "16,256,2",
                          "--no-persist"], env=env, capture_output=True, text=True, timeout=900,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    bars = {(m[0].strip(), m[1]): (int(m[2]), int(m[3])) for m in re.findall(
        r"^(.+?)\s+(32,128,2|16,256,2)\s+\d+ regs\s+(\d+) B spilled.*BAR\s+(\d+)", out.stdout, re.M)}
    assert len(bars) == 6, out.stdout
    for kind in ("scan1 fwd, one tile a program", "pa value scan, one tile a program"):
        assert bars[kind, "16,256,2"][0] == 0, bars  # no spills
        assert bars[kind, "16,256,2"][1] <= bars[kind, "32,128,2"][1], bars
