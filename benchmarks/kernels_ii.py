"""Kernels II: bf16 correctness at the benchmark shape against the float32 chunked form, then timings of seqlab
gla / delta_rule / prefix_attention beside fla 0.6.0 (chunk_gla, chunk_delta_rule) and the device copy bandwidth.

Usage (lent GPU): ``source benchmarks/device_env.sh && python benchmarks/kernels_ii.py --json out.json``.
``--only delta_rule`` (comma list of ``gla``, ``delta_rule``, ``prefix_attention``) runs only those ops' rows;
``--no-peer`` skips the fla rows; ``--timings-only`` skips the bf16 correctness pass (timings run first either
way), ``--checks-only`` the timings (``SEQLAB_BENCH_NO_PEER_CHECK=1`` leaves fla out of the delta_rule check); ``--varlen-peer`` adds fla to the packed-sequence gla check (its first varlen call autotunes and compiles
a new specialisation of every fla kernel: minutes on an H200, which cut the 2026-12-03 run short).
``SEQLAB_BENCH_TRACEBACK_S`` (default 540) dumps every thread's stack after that many seconds. With ``--json`` the file is rewritten after every row, so a run cut off by a
time limit still leaves the rows it finished.
``--small`` runs tiny shapes in float32 on whatever device there is (on CPU: the Triton kernels under
``TRITON_INTERPRET=1``, peers skipped when not installed): a smoke test of this script, not a measurement.
``section_kernels_ii(ctx)`` is the entry point for the ``SECTIONS`` list of benchmarks/kernels.py (``ctx`` has
``rows``, ``bench(name, fn, bytes_moved=None)`` and ``ratio(name, ours, peer)``).
"""
from __future__ import annotations

import json
import os
import sys
import time

if "--small" in sys.argv and not __import__("torch").cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

FULL = dict(B=4, T=4096, H=16, K=128, V=128)
SMALL = dict(B=1, T=130, H=2, K=16, V=16)
_T0 = time.time()


_ONLY: set[str] | None = None  # ops named by ``--only a,b`` when run as a script (None: all)


def _selected(name: str) -> bool:
    return _ONLY is None or name in _ONLY or (name == "gated_delta_rule" and "delta_rule" in _ONLY)


def _set_env(key: str, value: str | None) -> None:
    """Set ``key`` to ``value``, or unset it for None."""
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def correctness(rows: list, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """Triton path (``dt``) vs the float32 chunked PyTorch form on the same inputs (outputs, state, grads)."""
    from seqlab.kernels import prefix_attention
    torch.manual_seed(0)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    s = torch.randn(B, T, H, device=dev) * 30
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)
    cases = {
        "prefix_attention": (lambda xs, be: prefix_attention(*xs, output_final_state=True, backend=be), [s, v]),
    }
    for name, (fn, ins) in cases.items():
        if not _selected(name):
            continue
        # prefix_attention's forward forms (SEQLAB_PREFIX_ATTN_FWD); "lookback early": program-id order + early poll
        # SEQLAB_BENCH_PA_FORMS picks them as for the timings ("scan CTxBDxW": the scan form with pinned tiles)
        for impl in os.environ.get("SEQLAB_BENCH_PA_FORMS", _PA_FORMS).split(","):
            _pa_form_env(impl)
            try:
                _compare(f"{name} {impl}", fn, ins, do, rows,
                         f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}")
            except Exception as e:  # keep going: one failure must not hide the rest
                print(f"correctness {name} {impl}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
                rows.append(dict(name=f"correctness {name} {impl}", error=str(e)[:300]))
        _pa_form_env(None)
        if dev == "cuda":
            torch.cuda.empty_cache()


_PA_FORMS = "fused,lookback,lookback early,chunked,scan"


def _pa_form_env(impl: str | None) -> None:
    """Set the environment of one prefix_attention forward form ("lookback early": program-id order with the early
    poll; "scan CTxBDxW": pinned value tiles); None clears it."""
    keys = ("SEQLAB_PREFIX_ATTN_FWD", "SEQLAB_PREFIX_ATTN_TICKET", "SEQLAB_PREFIX_ATTN_EARLY_POLL",
            "SEQLAB_PREFIX_ATTN_SCAN_CFG")
    if impl is None:
        for k in keys:
            os.environ.pop(k, None)
        return
    words = impl.split()
    os.environ["SEQLAB_PREFIX_ATTN_FWD"] = words[0]
    os.environ["SEQLAB_PREFIX_ATTN_TICKET"] = "0" if "early" in impl else "1"
    os.environ["SEQLAB_PREFIX_ATTN_EARLY_POLL"] = "1" if "early" in impl else "0"
    _set_env("SEQLAB_PREFIX_ATTN_SCAN_CFG",
             words[1].replace("x", ",") if words[0] == "scan" and len(words) > 1 else None)


def _compare(name, fn, ins, do, rows, shape):
    res = []
    for be in ("torch", "triton"):
        xs = [(x.float() if be == "torch" else x).detach().clone().requires_grad_() for x in ins]
        o, st = fn(xs, be)
        (o.float() * do.float()).sum().backward()
        st = st[1] if isinstance(st, tuple) else st
        res.append([o, st] + [x.grad for x in xs])
        del o, st
    errs = {n: _rel(a, b) for n, a, b in zip(["o", "state"] + [f"d{i}" for i in range(len(ins))], res[1], res[0])}
    rows.append(dict(name=f"correctness {name} {shape}", **errs))
    print(f"correctness {name}: " + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)


def timings(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """prefix_attention vs copy bandwidth (gla: timings_gla, delta_rule: timings_delta_rule)."""
    if not _selected("prefix_attention"):
        return
    from seqlab.kernels import prefix_attention
    tag = f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}"
    v = torch.randn(B, T, H, V, device=dev, dtype=dt, requires_grad=True)
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)

    def run(fn, bwd):
        def f():
            o = fn()[0]
            if bwd:
                o.backward(do)
        return f

    n_copy = (1 << 28) if dev == "cuda" else (1 << 20)
    x = torch.randn(n_copy, device=dev)
    y = torch.empty_like(x)
    ctx.bench("limit: device copy (read+write)", lambda: y.copy_(x), bytes_moved=2 * x.numel() * 4)
    x = y = None  # free the copy buffers
    s = torch.randn(B, T, H, device=dev, requires_grad=True)
    nbytes = 2 * B * T * H * V * v.element_size() + B * T * H * 4 * 2  # read v, write o; read s, write lse
    # a copy of exactly v's bytes: the same-size reference (launch overhead and tail effects included)
    vc = torch.empty_like(v)
    ctx.bench(f"limit: copy of v ({v.numel() * v.element_size() / 2**20:.0f} MiB, read+write)",
              lambda: vc.copy_(v.detach()), bytes_moved=2 * v.numel() * v.element_size())
    ctx.bench(f"limit: copy of v, CUDA graph", lambda: vc.copy_(v.detach()),
              bytes_moved=2 * v.numel() * v.element_size(), graph=True)
    del vc
    # the forward forms (SEQLAB_PREFIX_ATTN_FWD): the fused single-pass default, the look-back single pass
    # (independent chunk programs) and the chunked three launches
    # "lookback early": program-id order with the early poll (SEQLAB_PREFIX_ATTN_TICKET=0, _EARLY_POLL=1);
    # SEQLAB_BENCH_PA_FORMS="lookback,lookback early" times a subset. Opt-in "lookback exact": every chunk on the
    # exact in-chunk weights (SEQLAB_PREFIX_ATTN_FAST=0) in the same process as "lookback"; the other forms keep
    # SEQLAB_PREFIX_ATTN_FAST as the caller set it (pending_gpu.sh sets it for a whole run)
    # "scan": the score pass and scan1's linear scan over the values (kernels/prefix_attention/triton_lin.py);
    # "scan CTxBDxW" pins its value tiles (SEQLAB_PREFIX_ATTN_SCAN_CFG)
    forms = os.environ.get("SEQLAB_BENCH_PA_FORMS", _PA_FORMS).split(",")
    fast0 = os.environ.get("SEQLAB_PREFIX_ATTN_FAST")
    for impl in forms:
        _pa_form_env(impl)
        _set_env("SEQLAB_PREFIX_ATTN_FAST", "0" if "exact" in impl else fast0)
        ctx.bench(f"prefix_attention fwd seqlab triton {impl} {tag}", lambda: prefix_attention(s, v, backend="triton"),
                  bytes_moved=nbytes)
        # the same forward replayed from a CUDA graph: GPU time without the Python launch path
        ctx.bench(f"prefix_attention fwd seqlab triton {impl} CUDA graph {tag}",
                  lambda: prefix_attention(s.detach(), v.detach(), backend="triton"), bytes_moved=nbytes, graph=True)
        ctx.bench(f"prefix_attention fwd+bwd seqlab triton {impl} {tag}",
                  run(lambda: prefix_attention(s, v, backend="triton"), True),
                  bytes_moved=nbytes + 4 * B * T * H * V * v.element_size())
        # fwd+bwd from a CUDA graph (torch.autograd.grad: no .grad accumulation inside the capture)
        ctx.bench(f"prefix_attention fwd+bwd seqlab triton {impl} CUDA graph {tag}",
                  lambda: torch.autograd.grad(prefix_attention(s, v, backend="triton")[0], (s, v), do),
                  bytes_moved=nbytes + 4 * B * T * H * V * v.element_size(), graph=True)
    _pa_form_env(None)
    _set_env("SEQLAB_PREFIX_ATTN_FAST", fast0)
    if dev == "cuda":
        from seqlab.kernels.prefix_attention.triton_scan import _pa_fused_fwd_kernel, _pa_lookback_fwd_kernel
        for impl, kern in (("fused", _pa_fused_fwd_kernel), ("lookback", _pa_lookback_fwd_kernel)):
            best = getattr(kern, "best_config", None)
            print(f"prefix_attention {impl} forward, autotuned config: {best}", flush=True)
            ctx.rows.append(dict(name=f"prefix_attention {impl} fwd config {tag}", config=str(best)))


def _gla_inputs(B, T, H, K, V, dev, dt):
    """q, v ~ N(0, 1), k unit-norm rows (in ``dt``); g = logsigmoid(N(0, 1)) / 16 in float32 (fla's GLA layer
    default gate_logit_normalizer)."""
    q = torch.randn(B, T, H, K, device=dev, dtype=dt)
    k = F.normalize(torch.randn(B, T, H, K, device=dev), dim=-1).to(dt)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    g = F.logsigmoid(torch.randn(B, T, H, K, device=dev)) / 16
    return q, k, v, g


def _gla_peer():
    if "--no-peer" in sys.argv:
        return None
    try:
        from fla.ops.gla import chunk_gla
    except ImportError:
        print("fla not installed: gla peer rows skipped", flush=True)
        return None
    return chunk_gla


def _gla_configs(ctx) -> None:
    """Record the autotuned config of every seqlab gla kernel (after a run at the benchmark shape)."""
    try:
        from seqlab.kernels.gla import triton_chunk as tc
    except ImportError:
        return
    for name in ("_gla_fwd_h_kernel", "_gla_fwd_ao64_kernel", "_gla_bwd_states_kernel", "_gla_bwd_dv_kernel",
                 "_gla_bwd_dqkg_kernel"):
        best = getattr(getattr(tc, name, None), "best_config", None)
        if best is not None:
            ctx.rows.append(dict(name=f"gla config {name}", config=str(best)))
            print(f"gla config {name}: {best}", flush=True)


def timings_gla(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """seqlab gla (Triton) vs fla ``chunk_gla``, fwd and fwd+bwd (grads of q, k, v, g by ``torch.autograd.grad``
    with the same ``do``, so no ``.grad`` accumulation is timed for either), each pair in one process."""
    from seqlab.kernels import gla
    peer = _gla_peer()
    tag = f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}"
    torch.manual_seed(0)
    xs = [x.requires_grad_() for x in _gla_inputs(B, T, H, K, V, dev, dt)]
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)

    def run(fn, bwd):
        def f():
            o = fn()[0]
            if bwd:
                torch.autograd.grad(o, xs, do)
        return f

    for bwd in (False, True):
        mode = "fwd+bwd" if bwd else "fwd"
        ours, fla = f"gla {mode} seqlab.gla triton {tag}", f"gla {mode} fla.chunk_gla {tag}"
        ctx.bench(ours, run(lambda: gla(*xs, backend="triton"), bwd))
        print(f"    [{time.time() - _T0:6.1f} s]", flush=True)
        if peer is not None:
            ctx.bench(fla, run(lambda: peer(xs[0], xs[1], xs[2], g=xs[3]), bwd))
            ctx.ratio(f"gla {mode} ours vs fla {tag}", ours, fla)
            print(f"    [{time.time() - _T0:6.1f} s]", flush=True)
    _gla_configs(ctx)


def _gla_compare(ctx, base, do, dht, tag, cu_seqlens=None, peer=None, dev="cuda") -> None:
    """Errors of seqlab's Triton path (and fla's, if given) against the float32 chunked form on ``base`` =
    (q, k, v, g, h0): o, final state and the gradients of ``<o, do> + <h_T, dh_T>``."""
    from seqlab.kernels import gla
    names = ["o", "state", "dq", "dk", "dv", "dg", "dh0"]
    res = {}
    for be, to32 in [("torch", True), ("triton", False)] + ([("fla", False)] if peer is not None else []):
        try:
            xs = [(x.float() if to32 else x).detach().clone().requires_grad_() for x in base]
            if be == "fla":
                o, ht = peer(xs[0], xs[1], xs[2], g=xs[3], initial_state=xs[4], output_final_state=True,
                             cu_seqlens=cu_seqlens)
            else:
                o, ht = gla(*xs[:4], initial_state=xs[4], output_final_state=True, cu_seqlens=cu_seqlens,
                            backend=be)
            loss = (o.float() * do.float()).sum() + (ht.float() * dht).sum()
            res[be] = [o.detach(), ht.detach()] + list(torch.autograd.grad(loss, xs))
            del o, ht, loss, xs
        except Exception as e:  # keep going: one failure must not hide the rest
            print(f"correctness gla {be} {tag}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            ctx.rows.append(dict(name=f"correctness gla {be} {tag}", error=str(e)[:300]))
        if dev == "cuda":
            torch.cuda.empty_cache()
    for be in [b for b in ("triton", "fla") if b in res and "torch" in res]:
        errs = {n: _rel(a, b) for n, a, b in zip(names, res[be], res["torch"])}
        who = "seqlab triton" if be == "triton" else "fla.chunk_gla"
        name = f"correctness gla {who} vs fp32 chunked form {tag}"
        ctx.rows.append(dict(name=name, **errs))
        print(f"{name}: " + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)
    getattr(ctx, "save", lambda: None)()  # benchmarks/kernels.py's ctx has no save()


def correctness_gla(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """Relative L2 error of the Triton path in ``dt`` against the float32 chunked PyTorch form (itself equal to the
    naive float64 oracle in tests) on the same ``dt``-valued inputs: o, final state and every gradient
    (q, k, v, g, h0) of ``<o, do> + <h_T, dh_T>``; fla ``chunk_gla`` on the same inputs for scale. Then two
    smaller cases that run compiled code paths the benchmark shape does not: decays of up to e^-30 per step in
    half the key channels (the exact log-space fallback for the diagonal sub-blocks) and packed sequences
    (``cu_seqlens`` with odd lengths, padded chunks)."""
    peer = _gla_peer() if dt != torch.float32 else None
    sdt = str(dt).removeprefix("torch.")
    torch.manual_seed(1)
    base = list(_gla_inputs(B, T, H, K, V, dev, dt)) + [torch.randn(B, H, K, V, device=dev)]
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)
    dht = torch.randn(B, H, K, V, device=dev)
    _gla_compare(ctx, base, do, dht, f"B{B} T{T} H{H} K{K} V{V} {sdt}", peer=peer, dev=dev)
    del base, do, dht
    Ts, Hs = min(T, 1024), min(H, 2)
    q, k, v, g = _gla_inputs(1, Ts, Hs, K, V, dev, dt)
    g[..., : K // 2] = -torch.rand(1, Ts, Hs, K // 2, device=dev) * 30
    base = [q, k, v, g, torch.randn(1, Hs, K, V, device=dev)]
    _gla_compare(ctx, base, torch.randn(1, Ts, Hs, V, device=dev, dtype=dt), torch.randn(1, Hs, K, V, device=dev),
                 f"strong decay B1 T{Ts} H{Hs} K{K} V{V} {sdt}", dev=dev)
    cu = torch.tensor([0, 1, Ts // 3, Ts // 3 + 1, Ts - 63, Ts], device=dev, dtype=torch.long)
    base = list(_gla_inputs(1, Ts, Hs, K, V, dev, dt)) + [torch.randn(5, Hs, K, V, device=dev)]
    _gla_compare(ctx, base, torch.randn(1, Ts, Hs, V, device=dev, dtype=dt), torch.randn(5, Hs, K, V, device=dev),
                 f"varlen {cu.tolist()} H{Hs} K{K} V{V} {sdt}", cu_seqlens=cu,
                 peer=peer if "--varlen-peer" in sys.argv else None, dev=dev)
    print(f"    [{time.time() - _T0:6.1f} s]", flush=True)


def _delta_inputs(B, T, H, K, V, dev, dt, gated):
    q = torch.randn(B, T, H, K, device=dev, dtype=dt)
    k = F.normalize(torch.randn(B, T, H, K, device=dev), dim=-1).to(dt)
    v = torch.randn(B, T, H, V, device=dev, dtype=dt)
    beta = torch.rand(B, T, H, device=dev, dtype=dt)
    g = F.logsigmoid(torch.randn(B, T, H, device=dev)) if gated else None
    return q, k, v, beta, g


def _delta_peer():
    if "--no-peer" in sys.argv:
        return None
    try:
        from fla.ops.delta_rule import chunk_delta_rule
    except ImportError:
        print("fla not installed: delta_rule peer rows skipped", flush=True)
        return None
    return chunk_delta_rule


def timings_delta_rule(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16, gated=False) -> None:
    """seqlab delta_rule (Triton) vs fla ``chunk_delta_rule``, fwd and fwd+bwd (grads by ``torch.autograd.grad``,
    so no ``.grad`` accumulation is timed for either); ``gated=True``: the gated form, ours only (fla 0.6.0 refuses
    its gated backward on Hopper with Triton < 3.7.1, fla issue #640)."""
    from seqlab.kernels import delta_rule
    peer = None if gated else _delta_peer()
    tag = f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}"
    torch.manual_seed(0)
    q, k, v, beta, g = _delta_inputs(B, T, H, K, V, dev, dt, gated=True)
    leaves = [x.requires_grad_() for x in (q, k, v, beta)]
    g.requires_grad_()
    do = torch.randn(B, T, H, V, device=dev, dtype=dt)

    def run(fn, bwd, xs):
        def f():
            o = fn()[0]
            if bwd:
                torch.autograd.grad(o, xs, do)
        return f

    for bwd in (False, True) if not gated else ():
        mode = "fwd+bwd" if bwd else "fwd"
        ours, fla = f"delta {mode} seqlab.delta_rule triton {tag}", f"delta {mode} fla.chunk_delta_rule {tag}"
        ctx.bench(ours, run(lambda: delta_rule(q, k, v, beta, backend="triton"), bwd, leaves))
        print(f"    [{time.time() - _T0:6.1f} s]", flush=True)
        if peer is not None:
            ctx.bench(fla, run(lambda: peer(q, k, v, beta), bwd, leaves))
            ctx.ratio(f"delta {mode} ours vs fla {tag}", ours, fla)
            print(f"    [{time.time() - _T0:6.1f} s]", flush=True)
    if not gated:
        return
    for bwd in (False, True):
        mode = "fwd+bwd" if bwd else "fwd"
        ctx.bench(f"gated delta {mode} seqlab.delta_rule triton {tag}",
                  run(lambda: delta_rule(q, k, v, beta, g, backend="triton"), bwd, leaves + [g]))
    print(f"    [{time.time() - _T0:6.1f} s]", flush=True)


def correctness_delta_rule(ctx, B=4, T=4096, H=16, K=128, V=128, dev="cuda", dt=torch.bfloat16) -> None:
    """Relative L2 error of the Triton path in ``dt`` against the float32 chunked PyTorch form (itself equal to the
    naive float64 oracle in tests) on the same ``dt``-valued inputs: o, final state and every gradient
    (q, k, v, beta, g, h0) of ``<o, do> + <h_T, dh_T>``; fla ``chunk_delta_rule`` on the same inputs for scale."""
    from seqlab.kernels import delta_rule
    peer = _delta_peer() if dt != torch.float32 else None
    tag = f"B{B} T{T} H{H} K{K} V{V} {str(dt).removeprefix('torch.')}"
    for gated in (False, True):
        torch.manual_seed(1)
        q, k, v, beta, g = _delta_inputs(B, T, H, K, V, dev, dt, gated)
        h0 = torch.randn(B, H, K, V, device=dev)
        do = torch.randn(B, T, H, V, device=dev, dtype=dt)
        dht = torch.randn(B, H, K, V, device=dev)
        base = [q, k, v, beta] + ([g] if gated else []) + [h0]
        names = ["o", "state", "dq", "dk", "dv", "dbeta"] + (["dg"] if gated else []) + ["dh0"]
        with_peer = peer is not None and not gated and not os.environ.get("SEQLAB_BENCH_NO_PEER_CHECK")
        # Triton first: a fault in the float32 reference (cuBLAS batched trsm at this size) would otherwise only
        # surface at our next launch and look like ours (seen twice on an H200, 2026-12-03, not yet localised)
        runs = [("triton", False), ("torch", True)] + ([("fla", False)] if with_peer else [])
        res = {}
        for be, to32 in runs:
            try:
                xs = [(x.float() if to32 else x).detach().clone().requires_grad_() for x in base]
                gx = xs[4] if gated else None
                if be == "fla":
                    o, ht = peer(*xs[:4], initial_state=xs[-1], output_final_state=True)
                else:
                    o, ht = delta_rule(*xs[:4], gx, initial_state=xs[-1], output_final_state=True, backend=be)
                loss = (o.float() * do.float()).sum() + (ht.float() * dht).sum()
                res[be] = [o, ht] + list(torch.autograd.grad(loss, xs))
            except Exception as e:  # keep going: one failure must not hide the rest
                print(f"correctness delta_rule {be}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
                ctx.rows.append(dict(name=f"correctness delta_rule {be} {tag}", error=str(e)[:300]))
        for be in [b for b, _ in runs if b != "torch" and b in res and "torch" in res]:
            errs = {n: _rel(a, b) for n, a, b in zip(names, res[be], res["torch"])}
            who = "seqlab triton" if be == "triton" else "fla.chunk_delta_rule"
            name = f"correctness {'gated ' if gated else ''}delta_rule {who} vs fp32 chunked form {tag}"
            ctx.rows.append(dict(name=name, **errs))
            print(f"{name}: " + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)
        del res
        if dev == "cuda":
            torch.cuda.empty_cache()
    getattr(ctx, "save", lambda: None)()  # benchmarks/kernels.py's ctx has no save()
    print(f"    [{time.time() - _T0:6.1f} s]", flush=True)


def section_kernels_ii(ctx) -> None:
    """benchmarks/kernels.py section: timings at B=4 T=4096 H=16 K=V=128 (ours and fla first, so a run cut short
    still has the ratios), then bf16 correctness (skipped with ``--timings-only``)."""
    check = "--timings-only" not in sys.argv
    if "--checks-only" not in sys.argv:
        if _selected("gla"):
            timings_gla(ctx, **FULL)
        if _selected("delta_rule"):
            timings_delta_rule(ctx, **FULL)
            timings_delta_rule(ctx, **FULL, gated=True)
        timings(ctx, **FULL)
    if check:
        correctness(ctx.rows, **FULL)
        if _selected("gla"):
            correctness_gla(ctx, **FULL)
        if _selected("delta_rule"):
            correctness_delta_rule(ctx, **FULL)


class _Ctx:
    """Rows plus ``bench`` / ``ratio`` (do_bench median on CUDA; a few wall-clock runs elsewhere)."""

    def __init__(self, path: str | None = None) -> None:
        self.rows: list[dict] = []
        self.path = path

    def save(self) -> None:
        """Rewrite the ``--json`` file with the rows so far."""
        if self.path:
            cuda = torch.cuda.is_available()
            with open(self.path, "w") as fh:
                json.dump(dict(device=torch.cuda.get_device_name() if cuda else "cpu", rows=self.rows), fh, indent=1)

    def bench(self, name, fn, bytes_moved=None, graph=False):
        """Median ms of ``fn`` (``graph=True``: replayed from a CUDA graph after a warm-up call, so autotuning
        happens outside the capture; skipped off CUDA)."""
        try:
            if torch.cuda.is_available() and graph:
                from triton.testing import do_bench_cudagraph
                fn()
                torch.cuda.synchronize()
                ms = do_bench_cudagraph(fn, rep=100, return_mode="median")
            elif graph:
                return None
            elif torch.cuda.is_available():
                from triton.testing import do_bench
                ms = do_bench(fn, warmup=10, rep=100, return_mode="median")
            else:
                fn()
                t0 = time.perf_counter()
                for _ in range(2):
                    fn()
                ms = (time.perf_counter() - t0) / 2 * 1e3
        except Exception as e:
            print(f"{name}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
            self.rows.append(dict(name=name, error=str(e)[:300]))
            return None
        r = dict(name=name, ms=ms)
        if bytes_moved:
            r["GBps"] = bytes_moved / ms / 1e6
        self.rows.append(r)
        print(f"{name:62s} {ms:9.3f} ms" + (f" {r['GBps']:8.0f} GB/s" if bytes_moved else ""), flush=True)
        self.save()
        return ms

    def ratio(self, name, ours, peer):
        a = next((r["ms"] for r in self.rows if r.get("name") == ours and "ms" in r), None)
        b = next((r["ms"] for r in self.rows if r.get("name") == peer and "ms" in r), None)
        if a and b:
            self.rows.append(dict(name=name, ratio=b / a))
            print(f"    ratio {name}: {b / a:.3f}x (>1 means ours faster)", flush=True)
            self.save()


def main() -> None:
    import faulthandler

    import triton
    # A run killed by an outer ``timeout`` should say where it was: dump every thread's stack after N seconds.
    faulthandler.dump_traceback_later(int(os.environ.get("SEQLAB_BENCH_TRACEBACK_S", "540")), exit=False)
    global _ONLY
    if "--only" in sys.argv:  # read here, not at import: benchmarks/kernels.py has its own --only (section names)
        _ONLY = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    ctx = _Ctx(sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None)
    cuda = torch.cuda.is_available()
    print(torch.__version__, triton.__version__, torch.cuda.get_device_name() if cuda else "cpu", flush=True)
    if "--small" in sys.argv:
        dev = "cuda" if cuda else "cpu"
        if _selected("gla"):
            correctness_gla(ctx, **SMALL, dev=dev, dt=torch.float32)
            timings_gla(ctx, **SMALL, dev=dev, dt=torch.float32)
        correctness(ctx.rows, **SMALL, dev=dev, dt=torch.float32)
        timings(ctx, **SMALL, dev=dev, dt=torch.float32)
        if _selected("delta_rule"):
            timings_delta_rule(ctx, **SMALL, dev=dev, dt=torch.float32)
            correctness_delta_rule(ctx, **SMALL, dev=dev, dt=torch.float32)
            timings_delta_rule(ctx, **SMALL, dev=dev, dt=torch.float32, gated=True)
    else:
        section_kernels_ii(ctx)
    ctx.save()


if __name__ == "__main__":
    main()
