"""scan1: chunked PyTorch form and Triton kernels (interpreter, fp32) against the naive oracle."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from seqlab.kernels import scan1  # noqa: E402
from seqlab.kernels._dispatch import triton_available  # noqa: E402
from seqlab.kernels.scan1 import scan1_chunked, scan1_naive  # noqa: E402
from seqlab.kernels.scan1.reference import LOOP_MIN_WIDTH, scan1_loop  # noqa: E402

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not importable")
TS = [1, 63, 64, 65, 130]


def _inputs(B, T, D, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    la = F.logsigmoid(torch.randn(B, T, D, generator=gen, dtype=dtype) + 2)
    b = torch.randn(B, T, D, generator=gen, dtype=dtype)
    h0 = torch.randn(B, D, generator=gen, dtype=torch.float32 if dtype != torch.float64 else dtype)
    return la, b, h0


def _run(fn, la, b, h0, weights):
    """Output, final state and the gradients of a fixed loss w.r.t. (log_a, b, h0)."""
    leaves = [x.clone().requires_grad_() for x in (la, b, h0)]
    h, ht = fn(*leaves)
    loss = (h * weights).sum() + (ht * ht).sum()
    grads = torch.autograd.grad(loss, leaves)
    return [h.detach(), ht.detach(), *grads]


NAMES = ["h", "final_state", "dlog_a", "db", "dh0"]


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_equals_naive_float64(T, reverse):
    la, b, h0 = _inputs(2, T, 5, seed=T, dtype=torch.float64)
    a = la.exp() * torch.sign(torch.randn_like(la))  # negative gates too: the chunked form is exact
    h_ref, hT_ref = scan1_naive(a, b, h0, reverse)
    h, hT = scan1_chunked(a, b, h0, reverse)
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hT, hT_ref, rtol=1e-12, atol=1e-12)


CASES = (
    [("triton", "log_a", T, r) for T in TS for r in (False, True)]
    + [("triton", "a", T, r) for T in (63, 130) for r in (False, True)]
    + [("torch", g, T, r) for g in ("a", "log_a") for T in (1, 65) for r in (False, True)]
)


@needs_triton
@pytest.mark.parametrize("backend,gate,T,reverse", CASES)
def test_matches_oracle(T, reverse, gate, backend, check_close):
    la, b, h0 = _inputs(2, T, 20, seed=T)
    w = torch.randn(b.shape, generator=torch.Generator().manual_seed(1))

    def ours(la_, b_, h0_):
        kw = dict(log_a=la_) if gate == "log_a" else dict(a=la_.exp())
        a = kw.pop("a", None)
        return scan1(a, b_, initial_state=h0_, output_final_state=True, reverse=reverse, backend=backend, **kw)

    got = _run(ours, la, b, h0, w)
    ref = _run(lambda la_, b_, h0_: scan1_naive(la_.exp(), b_, h0_, reverse), la, b, h0, w)
    for name, x, r in zip(NAMES, got, ref):
        check_close(f"{backend} {name}", x, r, 1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
@pytest.mark.parametrize("reverse", [False, True])
def test_varlen_equals_per_sequence_loop(backend, reverse, check_close):
    lens = [1, 5, 1, 64, 3, 1]
    offs = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
    T, D = sum(lens), 12
    la, b, _ = _inputs(1, T, D, seed=3)
    h0 = torch.randn(len(lens), D)
    w = torch.randn(1, T, D)

    def packed(la_, b_, h0_):
        return scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True, cu_seqlens=offs,
                     reverse=reverse, backend=backend)

    def loop(la_, b_, h0_):
        hs, finals = [], []
        for i, (s, e) in enumerate(zip(offs[:-1].tolist(), offs[1:].tolist())):
            h, hT = scan1(None, b_[:, s:e], log_a=la_[:, s:e], initial_state=h0_[i : i + 1],
                          output_final_state=True, reverse=reverse, backend=backend)
            hs.append(h)
            finals.append(hT)
        return torch.cat(hs, 1), torch.cat(finals, 0)

    for name, x, r in zip(NAMES, _run(packed, la, b, h0, w), _run(loop, la, b, h0, w)):
        check_close(f"varlen {name}", x, r, 1e-6)


@needs_triton
def test_no_initial_state_no_final_state():
    la, b, _ = _inputs(1, 9, 4)
    h, hT = scan1(None, b, log_a=la, backend="triton")
    assert hT is None
    ref, _ = scan1_naive(la.exp(), b)
    torch.testing.assert_close(h, ref)


def _bad_calls():
    b = torch.randn(2, 8, 4)
    a = torch.rand(2, 8, 4)
    one = torch.randn(1, 8, 4)
    cu = torch.tensor([0, 3, 8], dtype=torch.int32)
    return [
        (dict(a=None, b=b), "exactly one of a"),
        (dict(a=a, b=b, log_a=a), "exactly one of a"),
        (dict(a=a[:, :7], b=b), r"a must have shape \[B, T, D\]"),
        (dict(a=a, b=b[0]), r"b must have 3 dims \[B, T, D\]"),
        (dict(a=a.transpose(0, 1).contiguous().transpose(0, 1), b=b), "a must be contiguous"),
        (dict(a=a.int(), b=b), "a must have dtype"),
        (dict(a=a.double(), b=b.double()), "b must have dtype"),
        (dict(a=a, b=b, initial_state=torch.zeros(2, 5)), r"initial_state must have shape \[N, D\]"),
        (dict(a=a, b=b, initial_state=torch.zeros(2, 4, dtype=torch.bfloat16)), "initial_state must have dtype"),
        (dict(a=a, b=b, cu_seqlens=cu), "batch size must be 1"),
        (dict(a=one.exp(), b=one, cu_seqlens=torch.tensor([1, 3, 8])), "cu_seqlens must start at 0"),
        (dict(a=one.exp(), b=one, cu_seqlens=torch.tensor([0, 3, 3, 8])), "strictly increasing"),
        (dict(a=one.exp(), b=one, cu_seqlens=torch.tensor([0, 3, 7])), "must end at T = 8"),
        (dict(a=one.exp(), b=one, cu_seqlens=torch.tensor([0.0, 8.0])), "int32 or int64"),
        (dict(a=one.exp(), b=one, cu_seqlens=torch.tensor([0, 8]), initial_state=torch.zeros(2, 4)),
         r"initial_state must have shape \[N, D\] = \[1, 4\]"),
        (dict(a=a, b=b, backend="cuda"), "backend must be one of"),
        (dict(a=a, b=b.to("meta")), "b must be on meta|a must be on meta"),
    ]


@pytest.mark.parametrize("kwargs,match", _bad_calls())
def test_bad_input_raises_value_error(kwargs, match):
    a, b = kwargs.pop("a"), kwargs.pop("b")
    with pytest.raises(ValueError, match=match):
        scan1(a, b, backend=kwargs.pop("backend", "torch"), **kwargs)


@needs_triton
@pytest.mark.parametrize("varlen", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_look_back_through_aggregates(varlen, reverse, monkeypatch, check_close):
    """Chunks publish only aggregates, so every carry-in is composed over the look-back chain (the path
    concurrent GPU programs take); several channel blocks and chunks per sequence; linear gates of any sign."""
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", "1")
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,32,1")
    _triton_vs_torch(varlen, reverse, [3, 37, 1, 20], 7, False, "look-back", check_close)


def _triton_vs_torch(varlen, reverse, lens, seed, log_gate, label, check_close):
    """Triton against the PyTorch path on 40 channels (two blocks of 32 at ``CT,BD = 8,32``), h0, the final
    state and all gradients: packed ``lens`` when ``varlen``, else two sequences of 45 steps. Linear gates of any
    sign, or log gates."""
    gen = torch.Generator().manual_seed(seed)
    if varlen:
        B, T = 1, sum(lens)
        offs = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32)
    else:
        B, T, offs = 2, 45, None
    D = 40
    N = B if offs is None else len(offs) - 1
    if log_gate:
        g = F.logsigmoid(torch.randn(B, T, D, generator=gen) + 1)
    else:
        g = torch.rand(B, T, D, generator=gen) * 2 - 1
    b = torch.randn(B, T, D, generator=gen)
    h0 = torch.randn(N, D, generator=gen)
    w = torch.randn(B, T, D, generator=gen)

    def fn(backend):
        def f(g_, b_, h0_):
            gates = dict(log_a=g_) if log_gate else dict(a=g_)
            return scan1(gates.pop("a", None), b_, initial_state=h0_, output_final_state=True, cu_seqlens=offs,
                         reverse=reverse, backend=backend, **gates)
        return f

    for name, x, r in zip(["h", "final_state", "dgate", "db", "dh0"], _run(fn("triton"), g, b, h0, w),
                          _run(fn("torch"), g, b, h0, w)):
        check_close(f"{label} {name}", x, r, 1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("varlen", [False, True])
def test_torch_backward_equals_naive_autograd_float64(reverse, varlen):
    """The torch path's analytic backward (``scan1_chunked_bwd``: a reverse chunked scan) against autograd
    through the naive loop, in float64 with gates of both signs (linear space), h0 and a final-state gradient;
    packed sequences too. (The op itself runs it in float32: ``test_matches_oracle`` / ``test_varlen_*``.)"""
    from seqlab.kernels.scan1.reference import scan1_chunked_bwd

    gen = torch.Generator().manual_seed(7)
    lens = [1, 6, 2, 17] if varlen else None
    B, T, D = (1, sum(lens), 5) if varlen else (3, 37, 5)
    N = len(lens) if varlen else B
    f64 = dict(generator=gen, dtype=torch.float64)
    a, b = torch.rand(B, T, D, **f64) * 2 - 1, torch.randn(B, T, D, **f64)
    h0, w, wt = torch.randn(N, D, **f64), torch.randn(B, T, D, **f64), torch.randn(N, D, **f64)
    offs = None if not varlen else [0] + torch.tensor(lens).cumsum(0).tolist()

    def oracle(a_, b_, h0_):
        if not varlen:
            return scan1_naive(a_, b_, h0_, reverse)
        hs, fs = [], []
        for i, (s, e) in enumerate(zip(offs[:-1], offs[1:])):
            hh, ff = scan1_naive(a_[:, s:e], b_[:, s:e], h0_[i : i + 1], reverse)
            hs.append(hh)
            fs.append(ff)
        return torch.cat(hs, 1), torch.cat(fs, 0)

    leaves = [x.clone().requires_grad_() for x in (a, b, h0)]
    h, ht = oracle(*leaves)
    ref = torch.autograd.grad((h * w).sum() + (ht * wt).sum(), leaves)
    got = scan1_chunked_bwd(a, h0, h.detach(), w, wt, offs, reverse)
    for name, x, r in zip(["da", "db", "dh0"], got, ref):
        torch.testing.assert_close(x, r, rtol=1e-10, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("reverse", [False, True])
def test_loop_form_equals_naive_float64(reverse):
    la, b, h0 = _inputs(2, 33, 7, seed=5, dtype=torch.float64)
    a = la.exp() * torch.sign(torch.randn_like(la))
    h_ref, hT_ref = scan1_naive(a, b, h0, reverse)
    h, hT = scan1_loop(a, b, h0, reverse)
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hT, hT_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_torch_path_wide_steps_take_the_loop_and_match_the_oracle(reverse, monkeypatch, check_close):
    """B * D >= LOOP_MIN_WIDTH: the op's CPU path runs scan1_loop forward and in its backward."""
    import importlib

    ref = importlib.import_module("seqlab.kernels.scan1.reference")  # the package attribute is the op
    calls = []
    real = ref.scan1_loop
    monkeypatch.setattr(ref, "scan1_loop", lambda *a, **k: calls.append(1) or real(*a, **k))
    D = LOOP_MIN_WIDTH // 2
    la, b, h0 = _inputs(2, 9, D, seed=11)
    w = torch.randn(b.shape, generator=torch.Generator().manual_seed(2))

    def ours(la_, b_, h0_):
        return scan1(None, b_, log_a=la_, initial_state=h0_, output_final_state=True, reverse=reverse,
                     backend="torch")

    got = _run(ours, la, b, h0, w)
    assert len(calls) == 2  # forward and the backward's reverse scan
    ref_ = _run(lambda la_, b_, h0_: scan1_naive(la_.exp(), b_, h0_, reverse), la, b, h0, w)
    for name, x, r in zip(NAMES, got, ref_):
        check_close(f"loop {name}", x, r, 1e-5)


ORDER_CASES = [(t, e, nl) for t, e in ((0, 1), (1, 0), (1, 1), (0, 0)) for nl in (False, True)]


@needs_triton
@pytest.mark.parametrize("ticket,early,no_inclusive", ORDER_CASES)
@pytest.mark.parametrize("varlen,reverse", [(False, False), (True, True)])
def test_program_order_and_early_poll(varlen, reverse, ticket, early, no_inclusive, monkeypatch, check_close):
    """``SEQLAB_SCAN1_TICKET=0`` (tiles in program-id order) and ``SEQLAB_SCAN1_EARLY_POLL=1`` (the preceding
    chunk's inclusive state polled while the tile loads; the backward's state loads hoisted): forward and backward
    against the PyTorch path, with predecessors' inclusive states published (the early poll's fast path) and
    withheld (its fall-back to the look-back)."""
    monkeypatch.setenv("SEQLAB_SCAN1_TICKET", str(ticket))
    monkeypatch.setenv("SEQLAB_SCAN1_EARLY_POLL", str(early))
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", "1" if no_inclusive else "0")
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,32,1")
    _triton_vs_torch(varlen, reverse, [3, 29, 1, 20], 5, True, "order", check_close)


VEC_CASES = [("8,64,1", "0"), ("8,64,1", "1"), ("4,128,1", "1"), ("8,128,2", "0"), ("8,64,2", "1")]


@needs_triton
@pytest.mark.parametrize("cfg,no_inclusive", VEC_CASES)
@pytest.mark.parametrize("log_gate", [False, True])
@pytest.mark.parametrize("varlen,reverse", [(False, False), (True, True)])
def test_vector_lane_tiles(varlen, reverse, log_gate, cfg, no_inclusive, monkeypatch, check_close):
    """Tiles whose threads own ``VEC`` adjacent channels (``BD = 32 * warps * VEC``: 2 and 4 a thread; 1 channel a
    thread over 2 warps) against the
    PyTorch path on 40 channels (a partly masked block), forward and backward; with inclusive states withheld every
    look-back walks aggregates."""
    from seqlab.kernels.scan1 import triton_launch

    ct, bd, w = (int(x) for x in cfg.split(","))
    bc, vec = triton_launch._lanes(bd, w)
    assert bc * vec == bd and bc == 32 * w
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", no_inclusive)
    _triton_vs_torch(varlen, reverse, [3, 29, 1, 20], 11, log_gate, f"vec {cfg}", check_close)


@needs_triton
@pytest.mark.parametrize("two", ["0", "1"])
@pytest.mark.parametrize("cfg,no_inclusive", [("8,64,1", "0"), ("8,64,1", "1"), ("8,128,2", "1")])
@pytest.mark.parametrize("log_gate", [False, True])
@pytest.mark.parametrize("varlen,reverse", [(False, False), (True, True)])
def test_two_phase_forward(varlen, reverse, log_gate, cfg, no_inclusive, two, monkeypatch, check_close):
    """``SEQLAB_SCAN1_TWO=1`` (the default): the forward scans the tile once for its aggregate and again from the
    raw tile with the carry-in folded into its first row; ``0``: one scan, ``h = A_cum h_in + B_cum``. Outputs,
    final state and all gradients against the PyTorch path, resets (h0, packed starts) included, with look-backs
    over aggregates when inclusive states are withheld."""
    monkeypatch.setenv("SEQLAB_SCAN1_TWO", two)
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", no_inclusive)
    _triton_vs_torch(varlen, reverse, [3, 29, 1, 20], 13, log_gate, f"two={two} {cfg}", check_close)


@needs_triton
def test_two_phase_forward_half_precision(monkeypatch):
    """The two-phase forward on fp16 storage agrees with the one-phase forward to float32 rounding (both scan in
    float32 from the same raw tile; the carry enters through ``A h + B`` in one and the first step in the other),
    and matches the float64 oracle."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,64,1")
    gen = torch.Generator().manual_seed(3)
    la = F.logsigmoid(torch.randn(2, 37, 40, generator=gen) + 1).half()
    b = torch.randn(2, 37, 40, generator=gen).half()
    h0 = torch.randn(2, 40, generator=gen)
    outs = {}
    for two in ("0", "1"):
        monkeypatch.setenv("SEQLAB_SCAN1_TWO", two)
        assert triton_launch._phases()[0] == (two == "1")
        outs[two] = scan1(None, b, log_a=la, initial_state=h0, output_final_state=True, backend="triton")
    torch.testing.assert_close(outs["1"][0], outs["0"][0], rtol=1e-3, atol=1e-3)  # one fp16 ulp
    torch.testing.assert_close(outs["1"][1], outs["0"][1], rtol=1e-5, atol=1e-5)
    ref, ref_t = scan1_naive(la.double().exp(), b.double(), h0.double())
    err = ((outs["1"][0].double() - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item()
    assert err < 2e-3, err
    assert torch.allclose(outs["1"][1].double(), ref_t, rtol=1e-3, atol=1e-3)


@needs_triton
@pytest.mark.parametrize("varlen,reverse", [(False, False), (True, True)])
def test_forward_cache_hints(varlen, reverse, monkeypatch, check_close):
    """``SEQLAB_SCAN1_HINTS`` 1 / 2 / 3 (evict-first loads, streaming stores, both, in the forward tiles) leave every
    output and gradient equal to the PyTorch path's (float32 here, where ``auto`` leaves them off); ``auto`` is 3
    for 16-bit storage in chunks under 64 steps, else 0; other values are refused by name."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.delenv("SEQLAB_SCAN1_HINTS", raising=False)
    assert triton_launch._hints(torch.float32) == 0
    assert triton_launch._hints(torch.bfloat16) == 3 and triton_launch._hints(torch.float16) == 3
    assert triton_launch._hints(torch.bfloat16, 64) == 0  # 64-step 16-bit tiles: none (H200, nineteenth session)
    monkeypatch.setenv("SEQLAB_SCAN1_HINTS", "0")
    assert triton_launch._hints(torch.bfloat16) == 0
    for bad in ("yes", "4"):
        monkeypatch.setenv("SEQLAB_SCAN1_HINTS", bad)
        with pytest.raises(ValueError, match="SEQLAB_SCAN1_HINTS"):
            triton_launch._hints(torch.float32)
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,64,1")
    for mask in ("1", "2", "3"):
        monkeypatch.setenv("SEQLAB_SCAN1_HINTS", mask)
        assert triton_launch._hints(torch.float32) == int(mask)
        _triton_vs_torch(varlen, reverse, [3, 29, 1, 20], 13, True, f"hints {mask}", check_close)


@needs_triton
@pytest.mark.parametrize("cfg,D,T,no_inclusive", [("8,64,1", 64, 32, "0"), ("8,64,1", 128, 24, "1"),
                                                 ("16,128,2", 128, 32, "1")])
@pytest.mark.parametrize("log_gate", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_flat_forward_tiles(reverse, log_gate, cfg, D, T, no_inclusive, monkeypatch, check_close):
    """Dense input whose tiles are all full takes the ``FLAT`` forward (no masks, the row stride compiled in,
    immediate row offsets): h, the final state and every gradient against the PyTorch path and against the masked
    tiles (``SEQLAB_SCAN1_FLAT=0``), both directions, with h0; ragged shapes, packed input and bad flag values
    keep or refuse it."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", no_inclusive)
    ct, bd, _ = (int(x) for x in cfg.split(","))
    seen = []
    real = triton_launch._flat
    monkeypatch.setattr(triton_launch, "_flat", lambda *a: seen.append(real(*a)) or seen[-1])
    gen = torch.Generator().manual_seed(D + T)
    B = 2
    g = F.logsigmoid(torch.randn(B, T, D, generator=gen) + 1) if log_gate else torch.rand(B, T, D, generator=gen) * 2 - 1
    b, h0, w = torch.randn(B, T, D, generator=gen), torch.randn(B, D, generator=gen), torch.randn(B, T, D, generator=gen)

    def fn(backend):
        def f(g_, b_, h0_):
            gates = dict(log_a=g_) if log_gate else dict(a=g_)
            return scan1(gates.pop("a", None), b_, initial_state=h0_, output_final_state=True, reverse=reverse,
                         backend=backend, **gates)
        return f

    ref = _run(fn("torch"), g, b, h0, w)
    out = {}
    for flat in ("1", "0"):
        monkeypatch.setenv("SEQLAB_SCAN1_FLAT", flat)
        out[flat] = _run(fn("triton"), g, b, h0, w)
    assert seen == [True, False], seen
    for name, x, y, r in zip(["h", "final_state", "dgate", "db", "dh0"], out["1"], out["0"], ref):
        check_close(f"flat {name}", x, r, 1e-5)
        check_close(f"flat vs masked {name}", x, y, 1e-6)
    assert not real(True, T, D, ct, bd) and not real(False, T + 1, D, ct, bd) and not real(False, T, D + 8, ct, bd)
    monkeypatch.setenv("SEQLAB_SCAN1_FLAT", "on")
    with pytest.raises(ValueError, match="SEQLAB_SCAN1_FLAT"):
        real(False, T, D, ct, bd)


def _forward_variant_inputs(D: int, T: int, varlen: bool):
    """``(dtype, log_a, b, h0, cu_seqlens)`` in float32 then fp16, for tests asking a forward variant for the default's
    bits: two dense sequences, or three packed ones (lengths 1, 16 and ``T - 17``)."""
    gen = torch.Generator().manual_seed(D + T)
    cu = torch.tensor([0, 1, 17, T]) if varlen else None
    B = 1 if varlen else 2
    N = B if cu is None else len(cu) - 1
    for dt in (torch.float32, torch.float16):
        la = F.logsigmoid(torch.randn(B, T, D, generator=gen) + 1).to(dt)
        b = torch.randn(B, T, D, generator=gen).to(dt)
        yield dt, la, b, torch.randn(N, D, generator=gen), cu


@needs_triton
@pytest.mark.parametrize("cfg,D,T,varlen,reverse", [("4,64,1", 64, 70, False, False), ("4,32,1", 40, 45, True, True),
                                                    ("4,128,1", 128, 37, False, True)])
def test_lookback_window(cfg, D, T, varlen, reverse, monkeypatch, check_close):
    """``SEQLAB_SCAN1_LOOKBACK_WINDOW=W``: the forward's look-back loads ``W`` chunks' words a round trip and
    consumes them in order. With chunks publishing aggregates only (``SEQLAB_SCAN1_LOOKBACK_TEST=1``: every
    look-back walks to its sequence's start, across window ends and past the window's lower bound at the first
    chunks), the same bits as one word a round trip, float32 and fp16, h0, packed input (a length-1 sequence), both
    directions, 1, 2 and 4 channels a thread; bad values are refused."""
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", "1")
    for dt, la, b, h0, cu in _forward_variant_inputs(D, T, varlen):
        out = {}
        for w in ("1", "2", "8"):
            monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_WINDOW", w)
            out[w] = scan1(None, b, log_a=la, initial_state=h0, output_final_state=True, reverse=reverse,
                           cu_seqlens=cu, backend="triton")
        for w in ("2", "8"):
            assert torch.equal(out[w][0], out["1"][0]) and torch.equal(out[w][1], out["1"][1]), (dt, w)
        ref = scan1(None, b.float(), log_a=la.float(), initial_state=h0, output_final_state=True, reverse=reverse,
                    cu_seqlens=cu, backend="torch")
        tol = 1e-5 if dt == torch.float32 else 2e-3
        check_close(f"window h {dt}", out["8"][0].float(), ref[0].to(dt).float(), tol)
        check_close(f"window h_T {dt}", out["8"][1], ref[1], tol)
    for bad in ("3", "64", "x"):
        monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_WINDOW", bad)
        with pytest.raises(ValueError, match="SEQLAB_SCAN1_LOOKBACK_WINDOW"):
            scan1(None, b, log_a=la, backend="triton")


@needs_triton
@pytest.mark.parametrize("cfg,D,T,varlen,no_inclusive", [("8,64,1", 64, 32, False, "0"), ("8,64,1", 40, 29, True, "1"),
                                                         ("16,128,2", 128, 48, False, "1")])
@pytest.mark.parametrize("reverse", [False, True])
def test_persistent_forward(cfg, D, T, varlen, no_inclusive, reverse, monkeypatch, check_close):
    """``SEQLAB_SCAN1_PERSIST=K``: persistent programs take tiles from the ticket counter two ahead and prefetch the
    next one (``triton_persist``). The same bits as one program a tile, float32 and fp16 (full fp16 tiles of two
    channels a thread carry them as packed int32 words, ``PACK``), with h0, packed input, both directions and
    look-backs over aggregates; the persistent kernel really ran (a spy on its launch); bad values are refused."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setenv("SEQLAB_SCAN1_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", no_inclusive)
    launches = []
    real = triton_launch._scan1_fwd_persist_kernel

    class Spy:
        def __getitem__(self, grid):
            def run(*args, **kw):
                launches.append((grid, kw["PACK"]))
                return real[grid](*args, **kw)
            return run

    monkeypatch.setattr(triton_launch, "_scan1_fwd_persist_kernel", Spy())
    for dt, la, b, h0, cu in _forward_variant_inputs(D, T, varlen):
        out = {}
        for k in ("0", "3"):
            monkeypatch.setenv("SEQLAB_SCAN1_PERSIST", k)
            out[k] = scan1(None, b, log_a=la, initial_state=h0, output_final_state=True, reverse=reverse,
                           cu_seqlens=cu, backend="triton")
        assert torch.equal(out["3"][0], out["0"][0]) and torch.equal(out["3"][1], out["0"][1]), dt
        ref = scan1(None, b.float(), log_a=la.float(), initial_state=h0, output_final_state=True, reverse=reverse,
                    cu_seqlens=cu, backend="torch")
        check_close(f"persist h {dt}", out["3"][0].float(), ref[0].to(dt).float(), 1e-5 if dt == torch.float32 else 2e-3)
    _, bd, w = (int(x) for x in cfg.split(","))
    pack = not varlen and bd // (32 * w) == 2
    assert launches == [((3,), False), ((3,), pack)], launches  # 3 programs (one "SM" on a CPU)
    if pack:  # inputs starting at an odd element are not 4-byte aligned: no int32 words, same bits
        monkeypatch.setenv("SEQLAB_SCAN1_PERSIST", "3")
        la_odd = torch.empty(la.numel() + 1, dtype=la.dtype)[1:].view_as(la).copy_(la)
        got = scan1(None, b, log_a=la_odd, initial_state=h0, output_final_state=True, reverse=reverse,
                    cu_seqlens=cu, backend="triton")
        assert la_odd.data_ptr() % 4 == 2 and launches[-1] == ((3,), False)
        assert torch.equal(got[0], out["3"][0])
    for bad in ("-1", "x", "65"):
        monkeypatch.setenv("SEQLAB_SCAN1_PERSIST", bad)
        with pytest.raises(ValueError, match="SEQLAB_SCAN1_PERSIST"):
            triton_launch._persist()


@needs_triton
def test_register_caps(monkeypatch, check_close):
    """``SEQLAB_SCAN1_MAXNREG`` / ``_BWD_MAXNREG`` (and prefix_attention's ``SEQLAB_PREFIX_ATTN_SCAN_MAXNREG`` /
    ``_BWD_MAXNREG``) become the launch option ``maxnreg`` (results unchanged; 0 for none); the backward tiles
    default to 128 for 16-bit storage only; bad values are refused by name."""
    from seqlab.kernels.scan1 import triton_launch

    assert triton_launch._regcap("SEQLAB_SCAN1_MAXNREG") == {}
    assert triton_launch._bwd_regcap("SEQLAB_SCAN1_BWD_MAXNREG", torch.bfloat16) == {"maxnreg": 128}
    assert triton_launch._bwd_regcap("SEQLAB_SCAN1_BWD_MAXNREG", torch.float32) == {}
    monkeypatch.setenv("SEQLAB_SCAN1_MAXNREG", "96")
    assert triton_launch._regcap("SEQLAB_SCAN1_MAXNREG") == {"maxnreg": 96}
    monkeypatch.setenv("SEQLAB_SCAN1_BWD_MAXNREG", "0")
    assert triton_launch._bwd_regcap("SEQLAB_SCAN1_BWD_MAXNREG", torch.bfloat16) == {}
    for bad in ("x", "100", "16", "256"):
        monkeypatch.setenv("SEQLAB_SCAN1_BWD_MAXNREG", bad)
        with pytest.raises(ValueError, match="SEQLAB_SCAN1_BWD_MAXNREG"):
            triton_launch._regcap("SEQLAB_SCAN1_BWD_MAXNREG")
    monkeypatch.setenv("SEQLAB_SCAN1_BWD_MAXNREG", "128")
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,64,1")
    _triton_vs_torch(False, False, [3, 29, 1, 20], 5, True, "regcap", check_close)


def test_lanes_split_tiles_into_channel_groups(monkeypatch):
    """One channel group a thread (``BC = 32 * warps``), so no look-back vector is held by two threads; tiles that
    would need that are refused, from the environment too."""
    from seqlab.kernels.scan1 import triton_launch

    assert triton_launch._lanes(32, 1) == (32, 1)
    assert triton_launch._lanes(64, 1) == (32, 2)
    assert triton_launch._lanes(256, 2) == (64, 4)
    with pytest.raises(ValueError, match="multiple of 32"):
        triton_launch._lanes(16, 1)
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "16,32,2")
    with pytest.raises(ValueError, match="BD=32 must be a multiple of 32 \\* num_warps = 64"):
        triton_launch._config(torch.float32, 64, 64)
    monkeypatch.delenv("SEQLAB_SCAN1_CFG")
    for D in (1, 16, 40, 64, 1000):
        for bwd in (False, True):
            ct, bd, w = triton_launch._config(torch.bfloat16, D, 4096, bwd)
            assert triton_launch._lanes(bd, w)[0] == 32 * w


def test_workspace_starts_unwritten():
    """Every look-back word starts as the all-ones 'unwritten' pattern; the ticket counter (last two words) at 0."""
    from seqlab.kernels.scan1 import triton_launch

    ws = triton_launch._workspace(10, torch.device("cpu"), True)
    assert ws.dtype == torch.int64 and ws[:-2].eq(-1).all() and not ws[-2:].any()
    assert triton_launch._workspace(10, torch.device("cpu"), False).eq(-1).all()


@needs_triton
@pytest.mark.parametrize("reverse", [False, True])
def test_nan_gates_cannot_forge_workspace_markers(reverse, monkeypatch):
    """A gate NaN with every bit set (0xFFFFFFFF, the 'unwritten' pattern of a word's high half) or 0xFFFFFFFE (the
    'inclusive' marker): the chunk's aggregate carries it (NaN payloads propagate through products in the
    interpreter) and is made a canonical NaN before it is published, so every look-back still ends (a forged
    marker would wait forever or read an aggregate as a state); NaN reaches exactly the outputs it should."""
    monkeypatch.setenv("SEQLAB_SCAN1_LOOKBACK_TEST", "1")
    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "8,32,1")
    for bits in (-1, -2):  # int32 views of 0xFFFFFFFF and 0xFFFFFFFE
        a = torch.full((1, 40, 32), 0.5)
        b = torch.ones(1, 40, 32)
        a[0, 11, 3] = torch.tensor(bits, dtype=torch.int32).view(torch.float32)
        h = scan1(a, b, reverse=reverse, backend="triton")[0]
        ref = scan1(a, b, reverse=reverse, backend="torch")[0]
        assert torch.equal(h.isnan(), ref.isnan()) and h.isnan().any()
        assert torch.allclose(h.nan_to_num(), ref.nan_to_num(), atol=1e-6)


@needs_triton
def test_benchmark_ablations(monkeypatch):
    """``SEQLAB_SCAN1_ABLATE`` (timing splits only): 1 scans each tile with carry-in zero, which is exact for a
    single-tile sequence and drops the carry for later tiles; 2 stores a * b; bad values are refused."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setenv("SEQLAB_SCAN1_CFG", "16,32,1")
    torch.manual_seed(0)
    a, b = torch.rand(2, 40, 16), torch.randn(2, 40, 16)
    ref = scan1(a, b, backend="torch")[0]
    monkeypatch.setenv("SEQLAB_SCAN1_ABLATE", "1")
    h1 = scan1(a, b, backend="triton")[0]
    assert torch.allclose(h1[:, :16], ref[:, :16], atol=1e-5)
    assert not torch.allclose(h1[:, 16:], ref[:, 16:], atol=1e-3)
    second = scan1(a[:, 16:32].contiguous(), b[:, 16:32].contiguous(), backend="torch")[0]
    assert torch.allclose(h1[:, 16:32], second, atol=1e-5)
    monkeypatch.setenv("SEQLAB_SCAN1_ABLATE", "2")
    assert torch.allclose(scan1(a, b, backend="triton")[0], a * b, atol=1e-6)
    monkeypatch.setenv("SEQLAB_SCAN1_ABLATE", "3")
    with pytest.raises(ValueError, match="SEQLAB_SCAN1_ABLATE"):
        triton_launch._ablate()


WALK_CFGS = ["16,16,1,1,2", "8,32,1,1,3,2", "8,8,2,1,1,8", "16,64,1,2,2,4", "16,32,1,1,2,16", "16,4,4,1,3,4"]


@needs_triton
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("gate,D", [("log_a", 20), ("a", 20), ("log_a", 32), ("a", 32)])
def test_walking_kernels_match_oracle(T, reverse, gate, D, monkeypatch, check_close):
    """The walking kernels (``triton_walk``, ``SEQLAB_SCAN1_WALK=1``, 16-step chunks of 16 channels in 4
    segments): h, the final state and every gradient (initial state included) against the naive oracle, both
    directions, both gate forms, T in {1, 63, 64, 65, 130} (one chunk, ragged last chunks, full chunks with interior
    ones), D = 20 (a masked channel block) and 32 (``MASK_D`` off); the launch really took the walking kernels."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "1")
    taken = []
    real = triton_launch._walk_config
    monkeypatch.setattr(triton_launch, "_walk_config", lambda *a, **k: taken.append(real(*a, **k)) or taken[-1])
    la, b, h0 = _inputs(2, T, D, seed=T + 7)
    w = torch.randn(b.shape, generator=torch.Generator().manual_seed(2))

    def ours(la_, b_, h0_):
        kw = dict(log_a=la_) if gate == "log_a" else dict(a=la_.exp())
        a = kw.pop("a", None)
        return scan1(a, b_, initial_state=h0_, output_final_state=True, reverse=reverse, backend="triton", **kw)

    got = _run(ours, la, b, h0, w)
    ref = _run(lambda la_, b_, h0_: scan1_naive(la_.exp(), b_, h0_, reverse), la, b, h0, w)
    assert len(taken) == 2 and all(t is not None for t in taken), taken
    for name, x, r in zip(NAMES, got, ref):
        check_close(f"walk {name}", x, r, 1e-5)


@needs_triton
@pytest.mark.parametrize("segscan", ["0", "1"])
@pytest.mark.parametrize("cfg", WALK_CFGS)
@pytest.mark.parametrize("reverse", [False, True])
def test_walking_tiles_without_state(cfg, reverse, segscan, monkeypatch, check_close):
    """Walking tiles of every shape (time split over threads, vector lanes, two warps, 1 to 16 segments a chunk:
    ``TS``, the sixth number) without an initial state or
    final state and with negative gates (``a`` form), forward and backward, against the PyTorch path; the output
    buffers are poisoned with NaN first, so a row or channel the kernels skip fails. Both ways of joining a chunk's
    segments (``SEQLAB_SCAN1_WALK_SEGSCAN``)."""
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "1")
    monkeypatch.setenv("SEQLAB_SCAN1_WALK_SEGSCAN", segscan)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK_CFG", cfg)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK_BWD_CFG", cfg)
    gen = torch.Generator().manual_seed(11)
    B, T, D = 3, 37, 40
    a = torch.rand(B, T, D, generator=gen) * 2 - 1
    b, w = torch.randn(B, T, D, generator=gen), torch.randn(B, T, D, generator=gen)
    real_empty = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda x, **k: real_empty(x, **k).fill_(float("nan")))

    def run(backend):
        leaves = [x.clone().requires_grad_() for x in (a, b)]
        h = scan1(leaves[0], leaves[1], reverse=reverse, backend=backend)[0]
        return [h.detach(), *torch.autograd.grad((h * w).sum(), leaves)]

    ref = run("torch")
    for name, x, r in zip(["h", "da", "db"], run("triton"), ref):
        check_close(f"walk {cfg} {name}", x, r, 1e-5)


def test_walk_dispatch(monkeypatch):
    """``SEQLAB_SCAN1_WALK``: ``auto`` walks float32 dense input with >= 3/2 programs an SM, and 16-bit storage's
    backward only, never packed input or the interpreter; ``0`` never walks, ``bwd`` walks the backward only; bad
    values and configs are refused by name."""
    from seqlab.kernels.scan1 import triton_launch

    monkeypatch.setattr(triton_launch, "_sm_count", lambda device: 132)
    monkeypatch.setattr(triton_launch, "interpret_mode", lambda: False)
    cuda = torch.device("cuda", 0)
    f32, bf16 = torch.float32, torch.bfloat16
    assert triton_launch._walk_config(f32, 8, 1024, cuda, False) == (64, 32, 1, 1, 3, 4)
    assert triton_launch._walk_config(f32, 8, 1024, cuda, False, backward=True) == (32, 32, 1, 1, 4, 4)
    assert triton_launch._walk_config(f32, 2, 1024, cuda, False) is None  # 64 programs for 132 SMs
    # 16-bit: the forward looks back, the backward walks (eight 8-step segments; H200, docs/results.md)
    assert triton_launch._walk_config(bf16, 8, 1024, cuda, False) is None
    assert triton_launch._walk_config(bf16, 8, 1024, cuda, False, backward=True) == (64, 32, 1, 1, 3, 8)
    assert triton_launch._walk_config(bf16, 2, 1024, cuda, False, backward=True) is None  # 64 programs
    assert triton_launch._walk_config(f32, 8, 1024, cuda, True) is None
    assert (triton_launch._segscan(2), triton_launch._segscan(4)) == (1, 0)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "1")
    # 16-bit: eight adjacent channels a thread, so 8 threads for the segments (sm_90 TTGIR; walk_segments)
    assert triton_launch._walk_config(bf16, 1, 32, cuda, False) == (64, 32, 1, 1, 4, 8)
    assert triton_launch._walk_config(bf16, 1, 32, cuda, False, backward=True) == (64, 32, 1, 1, 3, 8)
    assert [triton_launch.walk_segments(dt, 64, bc, vec, w) for dt, bc, vec, w in
            ((f32, 32, 1, 1), (bf16, 32, 1, 1), (bf16, 8, 4, 1), (f32, 64, 1, 2), (bf16, 4, 8, 1))] == [4, 8, 4, 4, 8]
    monkeypatch.setenv("SEQLAB_SCAN1_WALK_CFG", "32,32,1,1,4,4")
    assert triton_launch._walk_config(f32, 8, 1024, cuda, False) == (32, 32, 1, 1, 4, 4)
    monkeypatch.delenv("SEQLAB_SCAN1_WALK_CFG")
    assert triton_launch._walk_config(f32, 1, 32, cuda, True) is None  # packed input always looks back
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "0")
    assert triton_launch._walk_config(f32, 8, 1024, cuda, False) is None
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "bwd")  # the backward walks, the forward looks back
    assert triton_launch._walk_config(bf16, 8, 1024, cuda, False) is None
    assert triton_launch._walk_config(bf16, 8, 1024, cuda, False, backward=True) == (64, 32, 1, 1, 3, 8)
    assert triton_launch._walk_config(bf16, 8, 1024, cuda, True, backward=True) is None
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "yes")
    with pytest.raises(ValueError, match="SEQLAB_SCAN1_WALK"):
        triton_launch._walk_config(f32, 8, 1024, cuda, False)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "1")
    for bad in ("64,32,1", "64,24,1,1,3", "64,32,1,1,0", "a,b,c,d,e", "64,32,1,1,3,128", "64,32,1,1,3,3"):
        monkeypatch.setenv("SEQLAB_SCAN1_WALK_CFG", bad)
        with pytest.raises(ValueError, match="SEQLAB_SCAN1_WALK_CFG"):
            triton_launch._walk_config(f32, 8, 1024, cuda, False)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK_SEGSCAN", "2")
    with pytest.raises(ValueError, match="SEQLAB_SCAN1_WALK_SEGSCAN"):
        triton_launch._segscan()
    monkeypatch.setattr(triton_launch, "interpret_mode", lambda: True)
    monkeypatch.setenv("SEQLAB_SCAN1_WALK", "auto")
    monkeypatch.delenv("SEQLAB_SCAN1_WALK_CFG")
    assert triton_launch._walk_config(f32, 8, 1024, cuda, False) is None
