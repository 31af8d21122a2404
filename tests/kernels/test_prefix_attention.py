"""prefix_attention (Aaren): oracle vs chunked PyTorch vs Triton (interpreter), masked softmax in float64."""
from __future__ import annotations

import pytest
import torch

from seqlab.kernels import prefix_attention, prefix_attention_step
from seqlab.kernels._dispatch import triton_available
from seqlab.kernels.prefix_attention import _naive
from seqlab.kernels.prefix_attention.reference import prefix_attention_chunked, prefix_attention_naive
from tests.kernels.conftest import rel_rmse

BACKENDS = ["torch"] + (["triton"] if triton_available() else [])


def _masked_softmax_attention(s, v):
    B, T, H, V = v.shape
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = s.permute(0, 2, 1)[:, :, None, :].expand(B, H, T, T).masked_fill(~mask, float("-inf")).softmax(-1)
    return (att @ v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)


def _spy_forms(monkeypatch) -> list[str]:
    """Record, in order, which forward form of the Triton path runs ("fused", "lookback", "chunked" or "scan")."""
    from seqlab.kernels.prefix_attention import triton_lin, triton_scan

    ran: list[str] = []

    def spy_scan(*args, _orig=triton_lin.prefix_attention_fwd_scan, **kwargs):
        ran.append("scan")
        return _orig(*args, **kwargs)

    monkeypatch.setattr(triton_lin, "prefix_attention_fwd_scan", spy_scan)
    for form, fn in (("fused", "prefix_attention_fwd_fused"), ("lookback", "prefix_attention_fwd_lookback"),
                     ("chunked", "_chunk_table")):  # _chunk_table: called by the chunked form only
        def spy(*args, _orig=getattr(triton_scan, fn), _form=form, **kwargs):
            ran.append(_form)
            return _orig(*args, **kwargs)

        monkeypatch.setattr(triton_scan, fn, spy)
    return ran


def _lse_ref(s, h0=None):
    """float64 ``lse_t = log(w0 exp(m0) + sum_{i<=t} exp(s_i))`` of a dense batch ``s [B, T, H]``."""
    lse = s.double().logcumsumexp(1)
    if h0 is not None:
        lse = torch.logaddexp(lse, (h0[0].double() + h0[2].double().log())[:, None])
    return lse


@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
def test_equals_masked_softmax_float64(T, scale):
    torch.manual_seed(T)
    s = torch.randn(2, T, 3, dtype=torch.float64) * scale
    v = torch.randn(2, T, 3, 5, dtype=torch.float64)
    ref = _masked_softmax_attention(s, v)
    for fn in (prefix_attention_naive, prefix_attention_chunked):
        o, _ = fn(s, v)
        assert torch.isfinite(o).all()
        assert rel_rmse(o, ref) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_matches_oracle_with_state_and_grads(backend, T, check_close):
    torch.manual_seed(T)
    B, H, V = 2, 2, 20
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V)
    h0 = [torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5]
    do, du, dw = torch.randn(B, T, H, V), torch.randn(B, H, V), torch.randn(B, H)
    res = []
    for impl in ("oracle", backend):
        xs = [x.clone().requires_grad_() for x in [s, v, *h0]]
        if impl == "oracle":
            o, st = _naive(xs[0], xs[1], tuple(xs[2:]), True)
        else:
            o, st = prefix_attention(xs[0], xs[1], initial_state=tuple(xs[2:]), output_final_state=True,
                                     backend=backend)
        ((o * do).sum() + (st[1] * du).sum() + (st[2] * dw).sum()).backward()
        res.append([o, *st, xs[0].grad, xs[1].grad, xs[3].grad, xs[4].grad])
    names = ["o", "m", "u", "w", "ds", "dv", "du0", "dw0"]
    for n, a, b in zip(names, res[1], res[0]):
        check_close(n, a, b, 1e-5 if n in ("o", "m", "u", "w") else 1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("impl", ["fused", "chunked", "lookback", "scan"])
def test_varlen_equals_loop(backend, reverse, impl, monkeypatch, check_close):
    if backend == "torch" and impl != "fused":
        pytest.skip("the forward form only exists on the Triton path")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
    ran = _spy_forms(monkeypatch) if backend == "triton" else None
    torch.manual_seed(0)
    cu = torch.tensor([0, 1, 30, 31, 70, 71])
    T, H, V = 71, 2, 20
    s, v = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V)
    s_, v_ = s.clone().requires_grad_(), v.clone().requires_grad_()
    o, st = prefix_attention(s_, v_, cu_seqlens=cu, output_final_state=True, reverse=reverse, backend=backend)
    (o.square().sum() + st[1].sum()).backward()
    if ran is not None:
        assert ran == [impl], ran
    s2, v2 = s.clone().requires_grad_(), v.clone().requires_grad_()
    o2, st2 = _naive(s2, v2, None, True, cu) if not reverse else (None, None)
    if o2 is not None:
        (o2.square().sum() + st2[1].sum()).backward()
        check_close("ds", s_.grad, s2.grad, 1e-4)
        check_close("dv", v_.grad, v2.grad, 1e-4)
    for n in range(len(cu) - 1):
        a, b = cu[n].item(), cu[n + 1].item()
        on, stn = prefix_attention(s[:, a:b], v[:, a:b], output_final_state=True, reverse=reverse, backend="torch")
        check_close(f"o[{n}]", o[:, a:b], on, 1e-5)
        check_close(f"u[{n}]", st[1][n:n + 1], stn[1], 1e-5)


def test_reverse_is_flip():
    torch.manual_seed(0)
    s, v = torch.randn(2, 37, 2), torch.randn(2, 37, 2, 4)
    o, _ = prefix_attention(s, v, reverse=True)
    o2, _ = prefix_attention(s.flip(1), v.flip(1))
    assert rel_rmse(o, o2.flip(1)) < 1e-6


def test_step_matches_parallel_and_halves_chain():
    torch.manual_seed(0)
    s, v = torch.randn(2, 50, 3) * 10, torch.randn(2, 50, 3, 4)
    o, st = prefix_attention(s, v, output_final_state=True)
    state = None
    for t in range(50):
        ot, state = prefix_attention_step(s[:, t], v[:, t], state)
        assert rel_rmse(ot, o[:, t]) < 1e-5
    _, st1 = prefix_attention(s[:, :20].contiguous(), v[:, :20].contiguous(), output_final_state=True)
    o2, _ = prefix_attention(s[:, 20:].contiguous(), v[:, 20:].contiguous(), initial_state=st1)
    assert rel_rmse(o2, o[:, 20:]) < 1e-5


@pytest.mark.skipif("triton" not in BACKENDS, reason="triton not importable")
def test_triton_fp32_large_scores():
    s = torch.randn(1, 100, 2) * 1e4
    v = torch.randn(1, 100, 2, 16)
    o, _ = prefix_attention(s, v, backend="triton")
    ref = _masked_softmax_attention(s.double(), v.double())
    assert rel_rmse(o, ref) < 1e-6


def test_bad_inputs():
    s, v = torch.randn(2, 8, 3), torch.randn(2, 8, 3, 4)
    with pytest.raises(ValueError, match="s must have shape"):
        prefix_attention(torch.randn(2, 8, 4), v)
    with pytest.raises(ValueError, match="v must have 4 dims"):
        prefix_attention(s, v[..., 0])
    with pytest.raises(ValueError, match="batch size must be 1"):
        prefix_attention(s, v, cu_seqlens=torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="start at 0"):
        prefix_attention(s[:1], v[:1], cu_seqlens=torch.tensor([1, 8]))
    with pytest.raises(ValueError, match="initial_state must be a tuple"):
        prefix_attention(s, v, initial_state=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="dtype"):
        prefix_attention(s.double(), v.double())
    with pytest.raises(ValueError, match="contiguous"):
        prefix_attention(s, v.transpose(0, 1).contiguous().transpose(0, 1))
    with pytest.raises(ValueError, match="backend"):
        prefix_attention(s, v, backend="cuda")


@pytest.mark.skipif(not triton_available(), reason="triton not importable")
@pytest.mark.parametrize("T", [1, 63, 65, 130])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("impl", ["fused", "chunked", "lookback", "scan"])
def test_forward_forms_match_oracle(T, with_state, reverse, impl, monkeypatch, check_close):
    """All forward forms (SEQLAB_PREFIX_ATTN_FWD=scan, the default score pass and linear scan; fused, one walking
    pass; chunked, three launches; lookback, independent chunk programs) give the oracle's outputs, final state and
    gradients, through the walking backward (fused, chunked) or the scan backward (the default; lookback, scan); an
    empty initial state (w0 = 0) is allowed."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "walk" if impl in ("fused", "chunked") else "scan")
    ran = _spy_forms(monkeypatch)
    torch.manual_seed(T)
    B, H, V = 2, 2, 20
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V)
    h0 = [torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5] if with_state else None
    if with_state:
        h0[1][0, 0], h0[2][0, 0] = 0.0, 0.0  # one empty state
    do, du, dw = torch.randn(B, T, H, V), torch.randn(B, H, V), torch.randn(B, H)
    res = []
    for side in ("oracle", "triton"):
        xs = [x.clone().requires_grad_() for x in [s, v] + (h0 or [])]
        st0 = tuple(xs[2:]) if with_state else None
        if side == "oracle":
            if reverse:
                o, st = _naive(xs[0].flip(1), xs[1].flip(1), st0, True)
                o = o.flip(1)
            else:
                o, st = _naive(xs[0], xs[1], st0, True)
        else:
            o, st = prefix_attention(xs[0], xs[1], initial_state=st0, output_final_state=True, reverse=reverse,
                                     backend="triton")
        ((o * do).sum() + (st[1] * du).sum() + (st[2] * dw).sum()).backward()
        res.append([o, *st, xs[0].grad, xs[1].grad])
    assert ran == [impl], ran
    for n, a, b in zip(["o", "m", "u", "w", "ds", "dv"], res[1], res[0]):
        check_close(f"{impl} {n}", a, b, 1e-5 if n in ("o", "m", "u", "w") else 1e-4)


@pytest.mark.skipif(not triton_available(), reason="triton not importable")
def test_forward_forms_large_scores_and_bad_env(monkeypatch):
    from seqlab.kernels.prefix_attention import triton_scan

    torch.manual_seed(0)
    s, v = torch.randn(1, 65, 2, dtype=torch.float64) * 1e4, torch.randn(1, 65, 2, 8, dtype=torch.float64)
    ref = _masked_softmax_attention(s, v)
    ran = _spy_forms(monkeypatch)
    for impl in ("fused", "chunked", "lookback", "scan"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
        o, _ = prefix_attention(s.float(), v.float(), backend="triton")
        assert torch.isfinite(o).all() and rel_rmse(o.double(), ref) < 1e-5, impl
    assert ran == ["fused", "chunked", "lookback", "scan"], ran
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "fast")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_FWD"):
        triton_scan._fwd_impl()


# ---- SEQLAB_PREFIX_ATTN_FWD=lookback: independent chunk programs joined by a decoupled look-back ------------------
# Under the interpreter the chunk is 32 steps (one config), so T = 63 / 64 / 65 / 130 end a chunk short, exactly,
# one step over and two steps over, and 130 has five chunks. SEQLAB_PREFIX_ATTN_LOOKBACK_TEST=1 keeps chunks from
# publishing inclusive aggregates, so every look-back merges aggregates back to its sequence's first chunk (the
# path GPU programs take while predecessors run, which the sequential interpreter would not take otherwise).

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not importable")


@needs_triton
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("walk", [False, True])
def test_lookback_matches_oracle(T, with_state, walk, monkeypatch, check_close):
    """Outputs, lse, final state and (through the unchanged backward) gradients of the lookback form equal the
    float64 oracle, with and without an initial state (one of them empty, w0 = 0)."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    ran = _spy_forms(monkeypatch)
    torch.manual_seed(T)
    B, H, V = 2, 2, 20  # V = 20: two value blocks of 16 under the interpreter, the second one masked
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V)
    h0 = [torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5] if with_state else None
    if with_state:
        h0[1][0, 0], h0[2][0, 0] = 0.0, 0.0
    do, du, dw = torch.randn(B, T, H, V), torch.randn(B, H, V), torch.randn(B, H)
    res = []
    for impl in ("oracle", "triton"):
        xs = [x.clone().requires_grad_() for x in [s, v] + (h0 or [])]
        st0 = tuple(xs[2:]) if with_state else None
        if impl == "oracle":
            o, st = _naive(*[x.double() for x in xs[:2]], tuple(x.double() for x in st0) if st0 else None, True)
        else:
            o, st = prefix_attention(xs[0], xs[1], initial_state=st0, output_final_state=True, backend="triton")
        ((o * do).sum() + (st[1] * du).sum() + (st[2] * dw).sum()).backward()
        res.append([o, *st] + [x.grad for x in xs])
    assert ran == ["lookback"], ran
    names = ["o", "m", "u", "w", "ds", "dv"] + (["dm0", "du0", "dw0"] if with_state else [])
    for n, a, b in zip(names, res[1], res[0]):
        if n == "dm0":
            continue  # m carries no gradient
        check_close(n, a, b, 1e-5 if n in ("o", "m", "u", "w") else 1e-4)
    _, _, _, _, lse = triton_scan.prefix_attention_fwd(s, v, *(h0 or (None, None, None)), None)
    assert ran == ["lookback", "lookback"], ran
    check_close("lse", lse, _lse_ref(s, h0), 1e-6)


@needs_triton
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("walk", [False, True])
def test_lookback_varlen_equals_loop(with_state, walk, monkeypatch, check_close):
    """Packed sequences (length 1 next to multi-chunk ones; chunks never straddle a sequence) equal a loop of
    the oracle over the sequences, per-sequence initial states included; lse too."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    ran = _spy_forms(monkeypatch)
    torch.manual_seed(1)
    cu = torch.tensor([0, 1, 33, 34, 35, 100, 101, 165, 166])
    N, T, H, V = len(cu) - 1, 166, 2, 20
    s, v = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V)
    h0 = (torch.randn(N, H) * 3, torch.randn(N, H, V), torch.rand(N, H) + 0.5) if with_state else None
    o, st = prefix_attention(s, v, initial_state=h0, cu_seqlens=cu, output_final_state=True, backend="triton")
    _, _, _, _, lse = triton_scan.prefix_attention_fwd(s, v, *(h0 or (None, None, None)), cu)
    assert ran == ["lookback", "lookback"], ran
    for n in range(N):
        a, b = cu[n].item(), cu[n + 1].item()
        h0n = tuple(x[n:n + 1].double() for x in h0) if with_state else None
        on, stn = prefix_attention_naive(s[:, a:b].double(), v[:, a:b].double(), h0n, True)
        check_close(f"o[{n}]", o[:, a:b], on, 1e-5)
        check_close(f"lse[{n}]", lse[:, a:b], _lse_ref(s[:, a:b], h0n), 1e-6)
        for name, x, ref in zip("muw", st, stn):
            check_close(f"{name}[{n}]", x[n:n + 1], ref, 1e-5)


@needs_triton
@pytest.mark.parametrize("walk", [False, True])
def test_lookback_program_order_and_early_poll(walk, monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_TICKET=0`` (chunks in program-id order) with ``SEQLAB_PREFIX_ATTN_EARLY_POLL=1`` (the
    preceding record loaded with the tile, the look-back's first step taken on it): dense (five chunks, initial
    state) and packed cases against the oracle, with inclusive aggregates published and withheld."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_TICKET", "0")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_EARLY_POLL", "1")
    test_lookback_matches_oracle(130, True, walk, monkeypatch, check_close)
    test_lookback_varlen_equals_loop(True, walk, monkeypatch, check_close)


@needs_triton
@pytest.mark.parametrize("with_state", [False, True])
def test_lookback_empty_sequences_keep_state(with_state, check_close):
    """Called directly (the op itself rejects empty sequences): an empty packed sequence's final state is its
    initial state (or the empty state), and its neighbours are unaffected; T = 0 gives the initial states."""
    from seqlab.kernels.prefix_attention import triton_scan

    torch.manual_seed(2)
    cu = torch.tensor([0, 0, 40, 40, 41, 41])
    N, T, H, V = len(cu) - 1, 41, 2, 20
    s, v = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V)
    h0 = (torch.randn(N, H) * 3, torch.randn(N, H, V), torch.rand(N, H) + 0.5) if with_state else None
    o, *st, _ = triton_scan.prefix_attention_fwd_lookback(s, v, *(h0 or (None, None, None)), cu)
    for n in range(N):
        a, b = cu[n].item(), cu[n + 1].item()
        h0n = tuple(x[n:n + 1] for x in h0) if with_state else None
        on, stn = prefix_attention_naive(s[:, a:b].double(), v[:, a:b].double(), h0n, True)
        if b > a:
            check_close(f"o[{n}]", o[:, a:b], on, 1e-5)
        for name, x, ref in zip("muw", st, stn):
            assert torch.equal(x[n:n + 1].isinf(), ref.isinf()), (name, n)
            check_close(f"{name}[{n}]", x[n:n + 1].nan_to_num(neginf=0.0), ref.nan_to_num(neginf=0.0), 1e-5)
    s0, v0 = s[:, :0].expand(3, 0, H).contiguous(), v[:, :0].expand(3, 0, H, V).contiguous()
    h03 = tuple(x[:3] for x in h0) if with_state else None
    _, *st, _ = triton_scan.prefix_attention_fwd_lookback(s0, v0, *(h03 or (None, None, None)), None)
    _, stn = prefix_attention_naive(s0, v0, h03, True)
    for x, ref in zip(st, stn):
        assert torch.equal(x, ref)


@needs_triton
@pytest.mark.parametrize("walk", [False, True])
def test_lookback_large_scores(walk, monkeypatch):
    """Scores up to 1e4 in magnitude (maxima jumping between and inside chunks, a state far below): finite and
    equal to masked softmax attention in float64."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    ran = _spy_forms(monkeypatch)
    torch.manual_seed(3)
    s, v = torch.randn(2, 130, 2, dtype=torch.float64) * 1e4, torch.randn(2, 130, 2, 8, dtype=torch.float64)
    s[0, :, 0] = torch.linspace(-1e4, 1e4, 130)  # a new maximum at every step
    s[1, :, 1] = torch.linspace(1e4, -1e4, 130)  # the first step dominates everything after it
    o, st = prefix_attention(s.float(), v.float(), output_final_state=True, backend="triton")
    assert ran == ["lookback"], ran
    assert torch.isfinite(o).all() and all(torch.isfinite(x).all() for x in st)
    assert rel_rmse(o.double(), _masked_softmax_attention(s, v)) < 1e-5
    h0 = (torch.full((2, 2), -1e4), torch.randn(2, 2, 8), torch.ones(2, 2))
    o, _ = prefix_attention(s.float(), v.float(), initial_state=h0, backend="triton")
    ref, _ = prefix_attention_naive(s, v, tuple(x.double() for x in h0))
    assert torch.isfinite(o).all() and rel_rmse(o.double(), ref) < 1e-5


@needs_triton
def test_lookback_zeroes_its_scratch(monkeypatch, check_close):
    """The workspace (ticket counter and records) comes from torch.empty; filled with words that look like
    published inclusive aggregates of NaN, the results must not change (it is zeroed before every launch)."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1")
    empty = torch.empty
    poisoned = []

    def garbage_empty(*args, **kwargs):
        out = empty(*args, **kwargs)
        if out.dtype == torch.int64:
            out.fill_((2 << 32) | 0x7FC00000)  # flag "inclusive", value NaN
            poisoned.append(out.numel())
        return out

    monkeypatch.setattr(torch, "empty", garbage_empty)
    torch.manual_seed(4)
    cu = torch.tensor([0, 1, 70, 71, 140])
    s, v = torch.randn(1, 140, 2) * 3, torch.randn(1, 140, 2, 20)
    for c in (None, cu):
        o, st = prefix_attention(s, v, cu_seqlens=c, output_final_state=True, backend="triton")
        ref, st_ref = _naive(s.double(), v.double(), None, True, c)
        check_close("o", o, ref, 1e-5)
        check_close("u", st[1], st_ref[1], 1e-5)
    assert len(poisoned) == 2 and triton_scan._lookback_test()


@needs_triton
@pytest.mark.parametrize("cfg", ["16,16,4,0,1", "16,16,4,0,0", "64,32,1,0,0", "32,16,2,0,1"])
@pytest.mark.parametrize("varlen", [False, True])
def test_lookback_pinned_tiles(cfg, varlen, monkeypatch, check_close):
    """Other tiles through SEQLAB_PREFIX_ATTN_LOOKBACK_CFG=BT,BV,WARPS,MAXNREG,SCAN: 16-step chunks (look-backs
    over up to 8 chunks), a 64-step chunk, one value block wider than V, look-back tiles of 8, 4 and 1 rows, the
    running max by scan and by masked max; with an initial state and aggregates only (every look-back walks)."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_CFG", cfg)
    seen = []
    zero = triton_scan._lb_zero_ws
    monkeypatch.setattr(triton_scan, "_lb_zero_ws",
                        lambda nargs: (seen.append((nargs["BT"], nargs["BV"], nargs["LR"], nargs["CUMMAX_SCAN"])),
                                       zero(nargs)))
    torch.manual_seed(5)
    cu = torch.tensor([0, 1, 17, 18, 130, 131]) if varlen else None
    B, T, H, V = (1, 131, 2, 20) if varlen else (2, 130, 2, 20)
    N = len(cu) - 1 if varlen else B
    s, v = torch.randn(B, T, H) * 4, torch.randn(B, T, H, V)
    h0 = (torch.randn(N, H) * 3, torch.randn(N, H, V), torch.rand(N, H) + 0.5)
    o, mT, uT, wT, lse = triton_scan.prefix_attention_fwd(s, v, *h0, cu)
    bt, bv, warps, _, scan = (int(x) for x in cfg.split(","))
    assert seen == [(bt, bv, max(1, 32 * warps // bv), bool(scan))], seen
    bounds = cu.tolist() if varlen else None
    for n in range(N):
        a, b = (bounds[n], bounds[n + 1]) if varlen else (0, T)
        bi = 0 if varlen else n
        h0n = tuple(x[n:n + 1].double() for x in h0)
        on, stn = prefix_attention_naive(s[bi:bi + 1, a:b].double(), v[bi:bi + 1, a:b].double(), h0n, True)
        check_close(f"o[{n}]", o[bi:bi + 1, a:b], on, 1e-5)
        check_close(f"lse[{n}]", lse[bi:bi + 1, a:b], _lse_ref(s[bi:bi + 1, a:b], h0n), 1e-6)
        for name, x, ref in zip("muw", (mT, uT, wT), stn):
            check_close(f"{name}[{n}]", x[n:n + 1], ref, 1e-5)


@needs_triton
def test_lookback_benchmark_ablations(monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_ABLATE`` (timing splits only): 1 drops the look-back, exact for a single-chunk
    sequence and wrong after it; 2 writes the values as the output; bad values are refused."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    torch.manual_seed(3)
    s, v = torch.randn(1, 70, 2) * 3, torch.randn(1, 70, 2, 16)
    ref = prefix_attention_naive(s.double(), v.double())[0]
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_ABLATE", "1")
    o = prefix_attention(s, v, backend="triton")[0]
    check_close("o, first chunk", o[:, :32], ref[:, :32], 1e-5)  # one 32-step chunk under the interpreter
    assert not torch.allclose(o[:, 32:].double(), ref[:, 32:], atol=1e-3)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_ABLATE", "2")
    assert torch.equal(prefix_attention(s, v, backend="triton")[0], v)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_ABLATE", "5")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_ABLATE"):
        triton_scan._lb_ablate()


# ---- the look-back forward's two in-chunk weight variants (SEQLAB_PREFIX_ATTN_FAST) --------------------------------
# Fast chunks (first score finite and at most 60 below the chunk's max; 8 for float16 values): W[t, i] = exp(s_i - M_c);
# the others: W[t, i] = exp(s_i - cm_t) <= 1. SEQLAB_PREFIX_ATTN_FAST=0 gives every chunk the latter. An exact chunk
# runs the same operations under both settings (bitwise equal outputs), a fast chunk different ones (rounding
# differs): the tests below use that to check which variant each chunk took.


def _fast_chunks(s, spread=60.0, bt=32):
    """[B, NC, H] bool: the chunks of a dense batch ``s [B, T, H]`` that should take the fast weights (one 32-step
    chunk per program under the interpreter)."""
    B, T, H = s.shape
    s = s.float()
    out = torch.zeros(B, -(-T // bt), H, dtype=torch.bool)
    for c in range(out.shape[1]):
        x = s[:, c * bt:(c + 1) * bt]
        s0, mc = x[:, 0], x.max(1).values
        out[:, c] = torch.isfinite(s0) & (mc - s0 <= spread)
    return out


def _check_variants(s, runs, fast):
    """``runs``: {"1": (o, lse), "0": (o, lse)} of one input under SEQLAB_PREFIX_ATTN_FAST=1 / 0. Exact chunks are
    bitwise equal across the two, fast chunks differ somewhere."""
    (o1, l1), (o0, l0) = runs["1"], runs["0"]
    B, NC, H = fast.shape
    for b in range(B):
        for c in range(NC):
            for h in range(H):
                sl = slice(c * 32, (c + 1) * 32)
                same = torch.equal(o1[b, sl, h], o0[b, sl, h]) and torch.equal(l1[b, sl, h], l0[b, sl, h])
                assert same != bool(fast[b, c, h]), (b, c, h, bool(fast[b, c, h]), s[b, sl, h][:4])


@needs_triton
@pytest.mark.parametrize("fast", ["1", "0"])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_lookback_fast_and_exact_weights_match_oracle(fast, T, monkeypatch, check_close):
    """Both weight variants (the default, where chunks take the fast weights, and every chunk exact) give the oracle's
    outputs, lse, final state and gradients (initial state included), forward and reverse."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", fast)
    test_lookback_matches_oracle(T, True, False, monkeypatch, check_close)
    test_forward_forms_match_oracle(T, True, True, "lookback", monkeypatch, check_close)


@needs_triton
@pytest.mark.parametrize("fast", ["1", "0"])
def test_lookback_fast_and_exact_weights_varlen(fast, monkeypatch, check_close):
    """Both weight variants on packed sequences (lengths 1 next to multi-chunk ones, initial states), look-backs
    walking back to the sequence start."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", fast)
    test_lookback_varlen_equals_loop(True, True, monkeypatch, check_close)


def _mixed_scores():
    """Scores [2, 160, 2] (five 32-step chunks) whose chunks take both variants: head 0 ~ N(0, 1) * 1000 (spreads
    far over 60: exact, bar a chunk whose first score happens to be near its max); head 1 ~ N(0, 9) with chunk
    starts set to: a first score 60 below the max at a sequence start (fast at the limit, row factor e^60), -inf
    followed by larger scores, 200 below the max, -1e4, 60.5 below the max (exact), and untouched (fast)."""
    torch.manual_seed(6)
    s = torch.randn(2, 160, 2, dtype=torch.float64)
    s[..., 0] *= 1000
    s[..., 1] *= 3

    def below(b, c, d):  # the first score of chunk c, d below the chunk's max
        s[b, c * 32, 1] = s[b, c * 32 + 1:(c + 1) * 32, 1].max() - d

    below(0, 0, 60.0)
    s[0, 32, 1] = float("-inf")
    s[0, 33:64, 1] += 4.0
    below(0, 2, 200.0)
    s[0, 96, 1] = -1e4
    below(1, 1, 60.5)
    below(1, 2, 200.0)
    s[1, 96, 1] = float("-inf")
    s[1, 97:128, 1] += 5.0
    return s.float().double()  # representable in float32, so the chunk spreads are exact there


@needs_triton
@pytest.mark.parametrize("walk", [False, True])
def test_lookback_fast_and_exact_chunks_in_one_launch(walk, monkeypatch):
    """Chunks of both variants in one launch (spreads over 60, first scores -inf, exactly 60 and 60.5 below the
    max): finite, equal to masked softmax attention and to logcumsumexp in float64 per (sequence, head), and each
    chunk took the variant its scores call for."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "lookback")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    s = _mixed_scores()
    v = torch.randn(2, 160, 2, 20, dtype=torch.float64)
    fast = _fast_chunks(s)
    assert fast[:, :, 1].tolist() == [[True, False, False, False, True], [True, False, False, False, True]]
    assert fast.any() and not fast.all()
    ref, lse_ref = _masked_softmax_attention(s, v), _lse_ref(s)
    runs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", flag)
        o, mT, uT, wT, lse = triton_scan.prefix_attention_fwd(s.float(), v.float(), None, None, None, None)
        assert torch.isfinite(o).all() and torch.isfinite(lse).all(), flag
        for b in range(2):
            for h in range(2):
                assert rel_rmse(o[b, :, h], ref[b, :, h]) < 1e-5, (flag, b, h)
                assert rel_rmse(lse[b, :, h], lse_ref[b, :, h]) < 1e-6, (flag, b, h)
        runs[flag] = (o, lse)
    _check_variants(s, runs, fast)


@needs_triton
def test_lookback_fast_weights_need_a_close_first_score(monkeypatch, check_close):
    """A chunk whose first score is 200 below its max must take the exact weights: with the fast ones its first
    row's factor exp(M_c - m_0) = e^200 overflows float32 while its weight e^-200 underflows (NaN), at a sequence
    start and after an initial state far below. A chunk with a spread of 200 after a first score 1 below its max
    takes the fast weights and is exact too. float16 values take the fast weights within 8 only."""
    from seqlab.kernels.prefix_attention import triton_scan

    torch.manual_seed(7)
    B, T, H, V = 1, 64, 3, 20
    s = torch.randn(B, T, H) * 3
    for c in range(2):
        s[0, c * 32, 0] = s[0, c * 32 + 1:(c + 1) * 32, 0].max() - 200.0  # first score far below the max
        s[0, c * 32, 1] = s[0, c * 32 + 1:(c + 1) * 32, 1].max() - 200.0
        s[0, c * 32 + 2:(c + 1) * 32, 2] = s[0, c * 32, 2] - 200.0 * torch.rand(30)  # spread 200 after the first
        s[0, c * 32 + 1, 2] = s[0, c * 32, 2] + 1.0  # the max, just above the first score
    v = torch.randn(B, T, H, V)
    h0 = (torch.tensor([[-1e4, -1e4, 0.0]]), torch.randn(1, H, V), torch.tensor([[1.0, 1.0, 0.0]]))
    fast = _fast_chunks(s)
    assert fast[0].tolist() == [[False, False, True], [False, False, True]]
    runs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", flag)
        for state in (None, h0):
            o, mT, uT, wT, lse = triton_scan.prefix_attention_fwd_lookback(s, v, *(state or (None,) * 3), None)
            assert torch.isfinite(o).all() and torch.isfinite(lse).all(), (flag, state is None)
            h0n = None if state is None else tuple(x.double() for x in state)
            ref, st = prefix_attention_naive(s.double(), v.double(), h0n, True)
            check_close("o", o, ref, 1e-5)
            check_close("lse", lse, _lse_ref(s, h0n), 1e-6)
            for name, x, r in zip("muw", (mT, uT, wT), st):
                check_close(name, x, r, 1e-5)
            if state is None:
                runs[flag] = (o, lse)
    _check_variants(s, runs, fast)
    # the float16 limit: spreads of 7 and 30 from the first score
    s = torch.randn(1, 32, 2) * 0.5
    s[0, 0] = s[0, 1:].max(0).values - torch.tensor([7.0, 30.0])
    v = torch.randn(1, 32, 2, 16)
    for dt, expect in ((torch.float32, [True, True]), (torch.float16, [True, False])):
        runs = {}
        for flag in ("1", "0"):
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", flag)
            o, *_, lse = triton_scan.prefix_attention_fwd_lookback(s.to(dt), v.to(dt), None, None, None, None)
            check_close(f"o {dt}", o.float(), _masked_softmax_attention(s.to(dt).double(), v.to(dt).double()),
                        1e-3 if dt == torch.float16 else 1e-5)
            runs[flag] = (o, lse)
        _check_variants(s, runs, _fast_chunks(s, 8.0 if dt == torch.float16 else 60.0))
        assert _fast_chunks(s, 8.0 if dt == torch.float16 else 60.0)[0, 0].tolist() == expect
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FAST", "2")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_FAST"):
        triton_scan._lb_fast()


# ---- SEQLAB_PREFIX_ATTN_FWD=scan: the score pass, then scan1's linear scan over the values ------------------------


@needs_triton
@pytest.mark.parametrize("cfg,V,walk,two,lse,hints", [("16,32,1", 20, False, "1", "walk", "0"),
                                                      ("16,64,1", 20, True, "1", "chunks", "1"),
                                                      ("16,64,1", 7, True, "0", "chunks", "0"),
                                                      ("16,128,1", 6, False, "1", "walk", "1"),
                                                      ("32,128,2", 12, True, "0", "chunks", "0")])
def test_scan_form_tiles_match_oracle(cfg, V, walk, two, lse, hints, monkeypatch, check_close):
    """The scan form with pinned value tiles: heads shared by a thread's channels (``V % VEC == 0``, one gate load a
    step) or straddling them (a gate load a channel), look-backs that walk to the sequence start, one and two
    phases, both score passes (the chunked one with several blocks of predecessor summaries: 5 chunks of 16 steps,
    4 summaries a block under the interpreter), with and without scan1's cache hints (``SEQLAB_SCAN1_HINTS``);
    outputs, lse and final state against the oracle, dense with an initial state and packed."""
    from seqlab.kernels.prefix_attention import triton_scan

    monkeypatch.setenv("SEQLAB_SCAN1_HINTS", hints)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", lse)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", cfg)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    monkeypatch.setenv("SEQLAB_SCAN1_TWO", two)
    ran = _spy_forms(monkeypatch)
    torch.manual_seed(V)
    B, T, H = 2, 70, 3
    s, v = torch.randn(B, T, H) * 4, torch.randn(B, T, H, V)
    h0 = (torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5)
    o, st = prefix_attention(s, v, initial_state=h0, output_final_state=True, backend="triton")
    o2, st2 = _naive(s.double(), v.double(), tuple(x.double() for x in h0), True)
    for n, a, b in zip(["o", "m", "u", "w"], [o, *st], [o2, *st2]):
        check_close(f"{cfg} V={V} {n}", a.double(), b, 1e-5)
    _, _, _, _, lse = triton_scan.prefix_attention_fwd(s, v, *h0, None)
    check_close("lse", lse.double(), _lse_ref(s, h0), 1e-6)
    cu = torch.tensor([0, 1, 33, 34, 70])
    sp, vp = s[:1], v[:1]
    op, stp = prefix_attention(sp, vp, cu_seqlens=cu, output_final_state=True, backend="triton")
    for n in range(len(cu) - 1):
        a, b = cu[n].item(), cu[n + 1].item()
        on, stn = _naive(sp[:, a:b].double(), vp[:, a:b].double(), None, True)
        if b > a:
            check_close(f"packed o[{n}]", op[:, a:b].double(), on, 1e-5)
        check_close(f"packed u[{n}]", stp[1][n:n + 1].double(), stn[1], 1e-5)
    assert ran == ["scan"] * 3, ran


STATE_NAMES = ["o", "m", "u", "w", "ds", "dv", "dm0", "du0", "dw0"]


def _with_state_grads(fn, s, v, h0, do, reverse):
    """``[o, m_T, u_T, w_T]`` and the gradients of ``(o * do).sum() + u_T.sum()`` w.r.t. ``(s, v, m0, u0, w0)``
    (``None`` where there is none) of ``fn(s, v, initial_state, reverse)``."""
    xs = [x.clone().requires_grad_() for x in (s, v, *h0)]
    o, st = fn(xs[0], xs[1], tuple(xs[2:]), reverse)
    ((o * do.to(o.dtype)).sum() + st[1].sum()).backward()
    return [o, *st] + [x.grad for x in xs]


def _triton_run(s_, v_, h0_, reverse):
    return prefix_attention(s_, v_, initial_state=h0_, output_final_state=True, reverse=reverse, backend="triton")


def _oracle_run(s_, v_, h0_, reverse):
    """The float64-capable oracle ``_naive``; ``reverse`` by flipping time."""
    if reverse:
        o, st = _naive(s_.flip(1), v_.flip(1), h0_, True)
        return o.flip(1), st
    return _naive(s_, v_, h0_, True)


@needs_triton
@pytest.mark.parametrize("cfg,H,V,T,walk", [("16,64,1", 4, 16, 64, False), ("16,64,1", 2, 32, 48, True),
                                           ("16,128,2", 8, 16, 32, True)])
def test_scan_form_flat_tiles(cfg, H, V, T, walk, monkeypatch, check_close):
    """Full tiles of dense input take the ``FLAT`` value scan (no masks, immediate row offsets); outputs, final state
    and gradients match the float64 oracle and the masked tile (``SEQLAB_PREFIX_ATTN_FLAT=0``), with an initial
    state, reversed, and with look-backs that walk to the sequence start. Ragged shapes, packed input and bad
    values of the flag keep or refuse it."""
    from seqlab.kernels.prefix_attention import triton_lin

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", cfg)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    ct, bd, _ = (int(x) for x in cfg.split(","))
    seen = []
    real = triton_lin._flat
    monkeypatch.setattr(triton_lin, "_flat", lambda *a: seen.append(real(*a)) or seen[-1])
    torch.manual_seed(T + H)
    s, v = torch.randn(2, T, H) * 4, torch.randn(2, T, H, V)
    h0 = (torch.randn(2, H) * 3, torch.randn(2, H, V), torch.rand(2, H) + 0.5)
    do = torch.randn(2, T, H, V)
    res = {}
    for flat in ("1", "0"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FLAT", flat)
        for reverse in (False, True):
            res[flat, reverse] = _with_state_grads(_triton_run, s, v, h0, do, reverse)
    assert seen == [True, True, False, False], seen
    for reverse in (False, True):
        ref = _with_state_grads(_oracle_run, s.double(), v.double(), [x.double() for x in h0], do, reverse)
        for n, a, b, c in zip(STATE_NAMES, res["1", reverse], res["0", reverse], ref):
            assert (a is None) == (b is None), n
            if a is None:  # m0: a stabiliser without gradient (the op's docstring)
                continue
            check_close(f"flat {n} rev={reverse}", a.double(), c.detach(), 1e-5)
            check_close(f"flat vs masked {n} rev={reverse}", a.double(), b.double(), 1e-6)
    assert not real(True, T, H * V, ct, bd, True)  # packed
    assert not real(False, T + 1, H * V, ct, bd, True)  # a partial last chunk
    assert not real(False, T, H * V, ct, bd, False)  # a thread's channels straddle heads
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FLAT", "2")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_FLAT"):
        real(False, T, H * V, ct, bd, True)


@needs_triton
@pytest.mark.parametrize("cfg,H,V,T,walk,with_state", [("16,32,1", 3, 32, 70, False, True),
                                                       ("16,32,1", 2, 64, 33, True, False),
                                                       ("16,64,1", 3, 16, 70, True, True),
                                                       ("16,64,2", 5, 32, 17, False, True),
                                                       ("16,32,1", 2, 32, 1, False, True)])
def test_inline_score_pass(cfg, H, V, T, walk, with_state, monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_SCAN_LSE=inline``: the value-scan tiles fold the chunk summaries and scan their own scores
    (channel blocks inside one head, and blocks of whole heads with a missing last head: ``H = 3``, four heads a
    block); no separate score pass runs. Outputs, final state, lse and gradients against the float64 oracle, and
    the same bits as the chunked score pass; packed input and heads that straddle a thread's channels fall back to
    it."""
    from seqlab.kernels.prefix_attention import triton_lin, triton_scan

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", cfg)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    passes = []
    real = triton_lin._score_pass
    monkeypatch.setattr(triton_lin, "_score_pass", lambda *a: passes.append(1) or real(*a))
    torch.manual_seed(T * H + V)
    s, v = torch.randn(2, T, H) * 4, torch.randn(2, T, H, V)
    h0 = (torch.randn(2, H) * 3, torch.randn(2, H, V), torch.rand(2, H) + 0.5) if with_state else (None,) * 3
    do = torch.randn(2, T, H, V)
    def grads(fn, *xs):  # [o, m_T, u_T, w_T] and the gradients of (o * do).sum() + u_T.sum() (None without h0)
        if with_state:
            return _with_state_grads(fn, *xs[:2], xs[2:], do, False)
        xs = [x.clone().requires_grad_() for x in xs[:2]]
        o, st = fn(*xs, None, False)
        ((o * do.to(o.dtype)).sum() + st[1].sum()).backward()
        return [o, *st, xs[0].grad, xs[1].grad, None, None, None]

    res = {}
    for form in ("chunks", "inline"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", form)
        n0 = len(passes)
        res[form] = grads(_triton_run, s, v, *h0)
        res[form, "lse"] = triton_scan.prefix_attention_fwd(s, v, *h0, None)[4]
        assert len(passes) - n0 == (2 if form == "chunks" else 0), (form, passes)
    ref = grads(_oracle_run, s.double(), v.double(), *[x.double() for x in h0 if x is not None])
    for n, a, b, c in zip(STATE_NAMES, res["inline"], res["chunks"], ref):
        if a is None or c is None:
            continue
        check_close(f"inline {n}", a.double(), c.detach(), 1e-5)
        assert torch.equal(a, b), n
    assert torch.equal(res["inline", "lse"], res["chunks", "lse"])
    check_close("inline lse", res["inline", "lse"].double(), _lse_ref(s, h0 if with_state else None), 1e-6)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", "inline")
    n0 = len(passes)
    cu = torch.tensor([0, 1, T] if T > 1 else [0, T])
    prefix_attention(s[:1], v[:1], cu_seqlens=cu, backend="triton")
    assert len(passes) == n0 + 1  # packed: the chunked score pass
    _, bd, w = (int(x) for x in cfg.split(","))
    vec = bd // (32 * w)
    assert triton_lin._inline_ok(False, V, bd, vec, 4)
    assert not triton_lin._inline_ok(True, V, bd, vec, 4)
    assert not triton_lin._inline_ok(False, 20, bd, vec, 4)  # a block neither inside a head nor whole heads
    assert not triton_lin._inline_ok(False, V, bd, vec, triton_lin.INLINE_MAX_CHUNKS + 1)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_INLINE_BP", "8")  # fewer, wider trips over the summaries: same bits
    assert triton_lin._inline_bp() == 8
    assert torch.equal(triton_scan.prefix_attention_fwd(s, v, *h0, None)[4], res["chunks", "lse"])
    for bad in ("6", "2", "x", "2048"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_INLINE_BP", bad)
        with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_INLINE_BP"):
            triton_lin._inline_bp()


@needs_triton
@pytest.mark.parametrize("cfg,H,V,T,lse,varlen", [("8,64,1", 2, 32, 70, "chunks", False),
                                                 ("8,128,1", 3, 16, 45, "inline", False),
                                                 ("8,32,1", 2, 20, 41, "chunks", True)])
def test_lookback_window_value_scan(cfg, H, V, T, lse, varlen, monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW=W``: the value scan's look-back loads ``W`` chunks' words a round trip
    (``triton_scan._carry_in``). Chunks publish aggregates only (every walk reaches its sequence's start): the same
    bits as one word a round trip, float32 and fp16, with an initial state, either score pass, packed input; against
    the float64 oracle; bad values are refused by name."""
    from seqlab.kernels.prefix_attention import triton_lin

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", cfg)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", lse)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1")
    passes = []
    real = triton_lin._score_pass
    monkeypatch.setattr(triton_lin, "_score_pass", lambda *a: passes.append(1) or real(*a))
    torch.manual_seed(T + V)
    B = 1 if varlen else 2
    cu = torch.tensor([0, 1, 20, T]) if varlen else None
    N = B if cu is None else len(cu) - 1
    s, v = torch.randn(B, T, H) * 4, torch.randn(B, T, H, V)
    h0 = (torch.randn(N, H) * 3, torch.randn(N, H, V), torch.rand(N, H) + 0.5)
    for dt in (torch.float32, torch.float16):
        res = {}
        for w in ("1", "4", "16"):
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW", w)
            res[w] = triton_lin.prefix_attention_fwd_scan(s, v.to(dt), *h0, cu)
        for w in ("4", "16"):
            for n, a, b in zip(["o", "m", "u", "w", "lse"], res[w], res["1"]):
                assert torch.equal(a, b), (dt, w, n)
    assert len(passes) == (0 if lse == "inline" else 6), passes  # the inline pass ran where asked
    o, st = prefix_attention(s, v, initial_state=h0, cu_seqlens=cu, output_final_state=True, backend="triton")
    for n in range(N):
        a, b = (cu[n].item(), cu[n + 1].item()) if varlen else (0, T)
        i = 0 if varlen else n
        on, stn = prefix_attention_naive(s[i:i + 1, a:b].double(), v[i:i + 1, a:b].double(),
                                         tuple(x[n:n + 1].double() for x in h0), True)
        check_close(f"window o[{n}]", o[i:i + 1, a:b].double(), on, 1e-5)
        for name, x, ref in zip("muw", st, stn):
            check_close(f"window {name}[{n}]", x[n:n + 1].double(), ref, 1e-5)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW", "5")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_LOOKBACK_WINDOW"):
        triton_lin.prefix_attention_fwd_scan(s, v, *h0, cu)


@needs_triton
@pytest.mark.parametrize("cfg,H,V,T,lse,walk", [("16,64,1", 2, 32, 48, "chunks", False),
                                               ("16,64,1", 3, 16, 70, "inline", True),
                                               ("16,32,1", 2, 20, 33, "chunks", True)])
def test_persistent_value_scan(cfg, H, V, T, lse, walk, monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_SCAN_PERSIST=K``: the value scan as persistent programs prefetching their next tile
    (``triton_lin_persist``), with either score pass. The same bits as one program a tile for float32 and fp16 (full
    fp16 tiles of two channels a thread carry ``v`` as int32 words), with an initial state and gradients through the
    oracle; the persistent launch really ran; bad values are refused by name."""
    from seqlab.kernels.prefix_attention import triton_lin, triton_lin_persist

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_CFG", cfg)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", lse)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    packs = []
    real = triton_lin_persist._pa_scan_fwd_persist_kernel

    class Spy:
        def __getitem__(self, grid):
            def run(*args, **kw):
                packs.append(kw["PACK"])
                return real[grid](*args, **kw)
            return run

    monkeypatch.setattr(triton_lin_persist, "_pa_scan_fwd_persist_kernel", Spy())
    torch.manual_seed(T + V)
    s, v = torch.randn(2, T, H) * 4, torch.randn(2, T, H, V)
    h0 = (torch.randn(2, H) * 3, torch.randn(2, H, V), torch.rand(2, H) + 0.5)
    do = torch.randn(2, T, H, V)
    for dt in (torch.float32, torch.float16):
        res = {}
        for k in ("0", "2"):
            monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_PERSIST", k)
            res[k] = triton_lin.prefix_attention_fwd_scan(s, v.to(dt), *h0, None)
        for n, a, b in zip(["o", "m", "u", "w", "lse"], res["2"], res["0"]):
            assert torch.equal(a, b), (dt, n)
    ct, bd, w = (int(x) for x in cfg.split(","))
    vec = bd // (32 * w)
    pack = (H * V) % bd == 0 and T % ct == 0 and V % vec == 0 and vec == 2  # FLAT, two fp16 channels a thread
    assert packs == [False, pack], packs
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_PERSIST", "2")
    got = _with_state_grads(_triton_run, s, v, h0, do, False)
    ref = _with_state_grads(_oracle_run, s.double(), v.double(), [x.double() for x in h0], do, False)
    for n, a, c in zip(STATE_NAMES, got, ref):
        if a is not None and c is not None:
            check_close(f"persist {n}", a.double(), c.detach(), 1e-5)
    for bad in ("two", "-2", "100"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_PERSIST", bad)
        with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_SCAN_PERSIST"):
            triton_lin.prefix_attention_fwd_scan(s, v, *h0, None)


@needs_triton
@pytest.mark.parametrize("H,V,BH", [(3, 16, 4), (5, 32, 2), (16, 128, 16)])
def test_inline_summaries_fill_the_workspace(H, V, BH):
    """The inline score pass's summaries kernel fills every look-back word of every chunk and channel with all
    ones (unwritten), head blocks past ``H`` included, and zeroes the two ticket-counter words after them."""
    from seqlab.kernels.prefix_attention import triton_lin

    N, T, CT = 2, 40, 16
    D, nch = H * V, -(-T // CT)
    s = torch.randn(N, T, H)
    sm = torch.full((N, nch, H), float("nan"))
    sw = sm.clone()
    ws = torch.full((N * nch * D + 3,), 7, dtype=torch.int64)
    fb = min(1024, triton_lin.next_pow2(BH * V))
    triton_lin._pa_lse_sum_kernel[(nch, N, -(-H // BH))](s, sm, sw, None, T, nch, ws, D, H=H, CT=CT, BH=BH,
                                                         VARLEN=False, FILL=1, V=V, FB=fb, num_warps=4)
    assert ws[:-3].eq(-1).all() and ws[-3:-1].eq(0).all() and ws[-1] == 7
    for j in range(nch):
        chunk = s[:, j * CT:(j + 1) * CT]
        m = chunk.max(1).values
        assert torch.allclose(sm[:, j], m) and torch.allclose(sw[:, j], (chunk - m[:, None]).exp().sum(1))


@needs_triton
def test_scan_form_defaults(monkeypatch):
    """The measured defaults (H100, eighteenth session, docs/results.md): the inline score pass, and 64-step value
    chunks for 16-bit values on a GPU (32 for float32, at most ``T``); dense default forwards run no separate score
    pass, packed ones do."""
    from seqlab.kernels.prefix_attention import triton_lin

    for k in ("SEQLAB_PREFIX_ATTN_SCAN_LSE", "SEQLAB_PREFIX_ATTN_SCAN_CFG", "SEQLAB_SCAN1_CFG", "SEQLAB_PREFIX_ATTN_FWD",
              "SEQLAB_PREFIX_ATTN_SCAN_WALK"):
        monkeypatch.delenv(k, raising=False)
    assert triton_lin._lse_form() == "inline"
    with monkeypatch.context() as m:  # scan1's GPU tile (32 steps up to T, 128 channels, 2 warps) off the interpreter
        m.setattr(triton_lin, "interpret_mode", lambda: False)
        from seqlab.kernels.scan1 import triton_launch

        m.setattr(triton_launch, "interpret_mode", lambda: False)
        assert triton_launch._config(torch.bfloat16, 2048, 4096) == (64, 256, 4)  # scan1's own 16-bit tile
        assert triton_lin._scan_config(torch.bfloat16, 2048, 4096) == (64, 128, 2)  # not scan1's
        assert triton_lin._scan_config(torch.float32, 2048, 4096) == (32, 128, 2)
        m.setattr(triton_lin, "_config", lambda dtype, D, T: (max(16, min(32, T)), 128, 2))
        assert triton_lin._scan_config(torch.bfloat16, 2048, 4096) == (64, 128, 2)
        assert triton_lin._scan_config(torch.float16, 2048, 4096) == (64, 128, 2)
        assert triton_lin._scan_config(torch.float32, 2048, 4096) == (32, 128, 2)
        assert triton_lin._scan_config(torch.bfloat16, 2048, 20) == (32, 128, 2)
    assert triton_lin._scan_config(torch.bfloat16, 2048, 4096) == (16, 32, 1)  # the interpreter's tile
    passes = []
    real = triton_lin._score_pass
    monkeypatch.setattr(triton_lin, "_score_pass", lambda *a: passes.append(1) or real(*a))
    torch.manual_seed(0)
    s, v = torch.randn(1, 40, 2) * 4, torch.randn(1, 40, 2, 16)
    o = prefix_attention(s, v, backend="triton")[0]
    assert not passes
    op = prefix_attention(s, v, cu_seqlens=torch.tensor([0, 15, 40]), backend="triton")[0]
    assert passes == [1]
    ref = torch.cat([_naive(s[:, a:b].double(), v[:, a:b].double(), None, False)[0] for a, b in ((0, 15), (15, 40))],
                    1)
    assert (op.double() - ref).norm() / ref.norm() < 1e-5
    ref = _naive(s.double(), v.double(), None, False)[0]
    assert (o.double() - ref).norm() / ref.norm() < 1e-5


@needs_triton
def test_scan_form_bad_score_pass_env(monkeypatch):
    from seqlab.kernels.prefix_attention import triton_lin

    for bad in ("tree", "Inline", ""):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_LSE", bad)
        with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_SCAN_LSE"):
            triton_lin._lse_form()


@needs_triton
@pytest.mark.parametrize("T,V,with_state,fwd,walk", [(1, 20, True, "scan", False), (63, 32, False, "scan", True),
                                                      (65, 20, True, "lookback", False), (130, 32, True, "scan", True)])
def test_scan_backward_matches_oracle(T, V, with_state, fwd, walk, monkeypatch, check_close):
    """SEQLAB_PREFIX_ATTN_BWD=scan: every gradient (scores, values, the initial state's u and w with one state empty,
    and through the final state's u and w) equals the float64 oracle's; V = 32 puts each backward tile inside one
    head (one dbeta atomic a row), V = 20 straddles heads (one a channel); look-backs walk to the sequence end."""
    from seqlab.kernels.prefix_attention import triton_lin_bwd

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", fwd)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LOOKBACK_TEST", "1" if walk else "0")
    calls = []
    orig = triton_lin_bwd.prefix_attention_bwd_scan
    monkeypatch.setattr(triton_lin_bwd, "prefix_attention_bwd_scan", lambda *a: calls.append(1) or orig(*a))
    torch.manual_seed(T + V)
    B, H = 2, 3
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V)
    h0 = [torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5] if with_state else []
    if with_state:
        h0[1][0, 0], h0[2][0, 0] = 0.0, 0.0  # one empty state
    do, du, dw = torch.randn(B, T, H, V), torch.randn(B, H, V), torch.randn(B, H)
    res = []
    for side in ("oracle", "triton"):
        xs = [(x.double() if side == "oracle" else x).clone().requires_grad_() for x in [s, v] + h0]
        st0 = tuple(xs[2:]) if with_state else None
        if side == "oracle":
            o, st = _naive(xs[0], xs[1], st0, True)
        else:
            o, st = prefix_attention(xs[0], xs[1], initial_state=st0, output_final_state=True, backend="triton")
        ((o * do.to(o.dtype)).sum() + (st[1] * du.to(o.dtype)).sum() + (st[2] * dw.to(o.dtype)).sum()).backward()
        res.append([x.grad for x in xs])
    names = ["ds", "dv", "dm0", "du0", "dw0"]
    for n, a, b in zip(names, res[1], res[0]):
        if n == "dm0":
            continue  # m is a stabiliser without gradient
        check_close(f"{fwd} {n}", a.double(), b, 1e-4)
    assert calls == [1], calls


@needs_triton
@pytest.mark.parametrize("V", [20, 32])
def test_scan_backward_varlen_and_reverse(V, monkeypatch, check_close):
    """The scan backward on packed sequences (length-1 ones included) and right to left equals the walk backward."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    torch.manual_seed(V)
    cu = torch.tensor([0, 1, 30, 31, 70, 71])
    T, H = 71, 2
    s, v, do = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V), torch.randn(1, T, H, V)
    du = torch.randn(5, H, V)
    grads = {}
    for bwd in ("walk", "scan"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", bwd)
        for reverse in (False, True):
            s_, v_ = s.clone().requires_grad_(), v.clone().requires_grad_()
            o, st = prefix_attention(s_, v_, cu_seqlens=cu, output_final_state=True, reverse=reverse,
                                     backend="triton")
            ((o * do).sum() + (st[1] * du).sum()).backward()
            grads[bwd, reverse] = (s_.grad, v_.grad)
    for reverse in (False, True):
        check_close(f"ds reverse={reverse}", grads["scan", reverse][0], grads["walk", reverse][0], 1e-4)
        check_close(f"dv reverse={reverse}", grads["scan", reverse][1], grads["walk", reverse][1], 1e-4)


@needs_triton
@needs_triton
def test_score_pass_tile_env(monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_LSE_TILE`` pins the chunked score pass's tile (forward and backward chunk passes); bad
    values are refused by name."""
    from seqlab.kernels.prefix_attention import triton_lin

    for bad in ("16,4", "16,x,1", "24,4,1", "8,4,1", "16,4,0"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LSE_TILE", bad)
        with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_LSE_TILE"):
            triton_lin._lse_chunk_tile(4)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_LSE_TILE", "16,2,1")
    assert triton_lin._lse_chunk_tile(3) == (16, 2, 1)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "scan")
    torch.manual_seed(5)
    s = (torch.randn(2, 40, 3) * 3).requires_grad_()
    v = torch.randn(2, 40, 3, 8).requires_grad_()
    o, st = prefix_attention(s, v, output_final_state=True, backend="triton")
    sd, vd = s.detach().double().requires_grad_(), v.detach().double().requires_grad_()
    o2, st2 = _naive(sd, vd, None, True)
    for n, a, b in zip(["o", "m", "u", "w"], [o, *st], [o2, *st2]):
        check_close(n, a.double(), b.detach(), 1e-5)
    do = torch.randn_like(o)
    g = torch.autograd.grad(o, (s, v), do)
    g2 = torch.autograd.grad(o2, (sd, vd), do.double())
    check_close("ds", g[0].double(), g2[0], 1e-5)
    check_close("dv", g[1].double(), g2[1], 1e-5)


def test_scan_backward_bad_env(monkeypatch):
    from seqlab.kernels.prefix_attention import triton_lin, triton_lin_bwd

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "fast")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_BWD"):
        triton_lin_bwd._bwd_form()
    for name, fn in (("SEQLAB_PREFIX_ATTN_SCAN_CFG", triton_lin._scan_config),
                     ("SEQLAB_PREFIX_ATTN_SCAN_BWD_CFG", triton_lin_bwd._scan_bwd_config)):
        for bad in ("32,128", "32,x,2", "32,96,1", "32,32,2"):
            monkeypatch.setenv(name, bad)
            with pytest.raises(ValueError, match=name):
                fn(torch.float32, 64, 64)
        monkeypatch.delenv(name)


@needs_triton
def test_scan_forms_half_precision(monkeypatch, check_close):
    """float16 values (float32 scores) through the scan forward and backward: outputs in float16, gradients within
    float16 rounding of the float64 oracle's; scores of 1e4 stay finite."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_BWD", "scan")
    torch.manual_seed(1)
    B, T, H, V = 2, 40, 2, 16
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V).half()
    do = torch.randn(B, T, H, V).half()
    res = []
    for side in ("oracle", "triton"):
        xs = [(x.double() if side == "oracle" else x).clone().requires_grad_() for x in (s, v)]
        o = _naive(*xs)[0] if side == "oracle" else prefix_attention(*xs, backend="triton")[0]
        assert o.dtype == (torch.float64 if side == "oracle" else torch.float16)
        (o * do.to(o.dtype)).sum().backward()
        res.append([o, *(x.grad for x in xs)])
    for n, a, b in zip(["o", "ds", "dv"], res[1], res[0]):
        check_close(f"fp16 {n}", a.double(), b, 3e-3)
    o, _ = prefix_attention(s * 1e4, v, backend="triton")
    assert torch.isfinite(o).all()


@needs_triton
@pytest.mark.parametrize("mode", ["1", "fused"])
@pytest.mark.parametrize("cfg", ["", "16,16,1,1,2,4", "8,8,2,1,3,2", "16,32,1,1,2,16"])
@pytest.mark.parametrize("H,V,T", [(2, 16, 37), (3, 8, 32), (2, 16, 64), (2, 32, 70)])
def test_scan_form_walking_value_scan(mode, cfg, H, V, T, monkeypatch, check_close):
    """``SEQLAB_PREFIX_ATTN_SCAN_WALK=1``: the value scan as walking programs (``triton_lin_walk``) after the same
    score pass; ``fused``: the score pass folded into the walk (one launch) wherever a channel block lies in one
    head, else as ``1``. Outputs, final state and every gradient (the backward reads the forward's ``lse``) against
    the float64 oracle with an initial state, both directions; one-head channel blocks (``V`` a multiple of the
    block) and blocks spanning heads, ragged and full chunks, masked channel blocks; the launch really walked (and
    fused exactly where it can); packed input (fused only) and bad flags keep or refuse it."""
    from seqlab.kernels.prefix_attention import triton_lin, triton_lin_walk

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", mode)
    if cfg:
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG", cfg)
    taken, launched = [], []
    real = triton_lin.walk_config
    monkeypatch.setattr(triton_lin, "walk_config", lambda *a: taken.append(real(*a)) or taken[-1])
    for name in ("fused_walk_forward", "walk_value_scan"):
        fn = getattr(triton_lin, name)
        monkeypatch.setattr(triton_lin, name, lambda *a, _n=name, _f=fn: launched.append(_n) or _f(*a))
    torch.manual_seed(T + H + V)
    s, v = torch.randn(2, T, H) * 4, torch.randn(2, T, H, V)
    h0 = (torch.randn(2, H) * 3, torch.randn(2, H, V), torch.rand(2, H) + 0.5)
    do = torch.randn(2, T, H, V)
    for reverse in (False, True):
        got = _with_state_grads(_triton_run, s, v, h0, do, reverse)
        ref = _with_state_grads(_oracle_run, s.double(), v.double(), [x.double() for x in h0], do, reverse)
        for n, a, c in zip(STATE_NAMES, got, ref):
            if a is None:
                continue
            check_close(f"walk {n} rev={reverse}", a.double(), c.detach(), 1e-5)
    assert len(taken) == 2 and all(t is not None for t in taken), taken
    block = taken[0][1] * taken[0][2]
    fused = mode == "fused" and V % block == 0
    assert launched == ["fused_walk_forward" if fused else "walk_value_scan"] * 2, (launched, block)
    # packed input: the fused walk takes it, the value walk does not (the look-back value scan then)
    assert (real(torch.float32, True) is not None) == (mode == "fused")
    for bad in ("16,16,1,1,2", "16,12,1,1,2,4", "16,16,1,1,2,32"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG", bad)
        with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG"):
            triton_lin_walk.walk_config(torch.float32, False)
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "yes")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_SCAN_WALK"):
        triton_lin_walk.walk_config(torch.float32, False)


def _fused_walk_env(monkeypatch, cfg: str, srep: str) -> list:
    """Select the fused walk (``SEQLAB_PREFIX_ATTN_SCAN_WALK=fused``, tile ``cfg`` or the interpreter default, score
    layout ``srep``) and record its launches: the returned list gets ``True`` per packed launch, ``False`` per dense
    one."""
    from seqlab.kernels.prefix_attention import triton_lin

    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "scan")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK", "fused")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FUSED_SREP", srep)
    if cfg:
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_SCAN_WALK_CFG", cfg)
    launched: list = []
    fn = triton_lin.fused_walk_forward
    monkeypatch.setattr(triton_lin, "fused_walk_forward", lambda *a: launched.append(a[-1] is not None) or fn(*a))
    return launched


@needs_triton
@pytest.mark.parametrize("cfg,srep", [("", "0"), ("8,8,2,1,3,2", "1"), ("", "2"), ("64,8,4,1,8,4", "2")])
def test_fused_walk_large_scores(cfg, srep, monkeypatch):
    """The fused walk (``SEQLAB_PREFIX_ATTN_SCAN_WALK=fused``) on scores up to 1e4 in magnitude: maxima jumping
    inside a segment, between segments and between chunks, the first step dominating all after it, ``-inf`` scores
    (masked steps) in the middle and at the start; finite and equal to masked softmax attention in float64, the
    final state and ``lse`` against the oracle; with an initial state far below the scores. ``64,8,4,1,8,4`` (the
    fourteenth session's GPU tile: four channels a thread, eight segments) runs with the default score layout alone,
    the other layouts on the smaller tiles; ``srep = 1`` scans the scores in the values' layout, ``2`` as one
    ``[1, CT]`` tile (``SEQLAB_PREFIX_ATTN_FUSED_SREP``)."""
    from seqlab.kernels.prefix_attention import triton_lin_walk, triton_scan

    launched = _fused_walk_env(monkeypatch, cfg, srep)
    torch.manual_seed(5)
    s, v = torch.randn(2, 130, 3, dtype=torch.float64) * 1e4, torch.randn(2, 130, 3, 32, dtype=torch.float64)
    s[0, :, 0] = torch.linspace(-1e4, 1e4, 130)  # a new maximum at every step
    s[1, :, 1] = torch.linspace(1e4, -1e4, 130)  # the first step dominates everything after it
    s[0, :3, 2] = float("-inf")  # nothing to attend to yet
    s[1, 40:47, 2] = float("-inf")
    o, st = prefix_attention(s.float(), v.float(), output_final_state=True, backend="triton")
    ref = _masked_softmax_attention(s, v)
    assert torch.isfinite(o[:, 3:]).all() and all(torch.isfinite(x).all() for x in st)
    assert rel_rmse(o[:, 3:].double(), ref[:, 3:]) < 1e-5
    assert o[0, :3, 2].abs().max() == 0  # no live score yet: the empty state's output, 0
    m_T = s.amax(1)
    e = torch.exp(s - m_T[:, None])  # -inf scores weigh 0
    for x, r in zip(st, (m_T, (e[..., None] * v).sum(1), e.sum(1))):  # (m_T, u_T, w_T) in float64
        assert rel_rmse(x.double(), r) < 1e-6
    _, _, _, _, lse = triton_scan.prefix_attention_fwd(s.float().contiguous(), v.float(), None, None, None, None)
    assert torch.allclose(lse.double(), torch.logcumsumexp(s, 1), rtol=1e-6, atol=1e-3)
    h0 = (torch.full((2, 3), -1e4), torch.randn(2, 3, 32), torch.ones(2, 3))
    o, _ = prefix_attention(s.float(), v.float(), initial_state=h0, backend="triton")
    ref, _ = prefix_attention_naive(s, v, tuple(x.double() for x in h0))
    assert torch.isfinite(o).all() and rel_rmse(o.double(), ref) < 1e-5
    assert launched == [False] * 3, launched
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FUSED_SREP", "3")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_FUSED_SREP"):
        triton_lin_walk._srep()


@needs_triton
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("cfg,srep", [("", "0"), ("8,8,2,1,3,2", "1"), ("", "2")])
def test_fused_walk_varlen_equals_loop(with_state, cfg, srep, monkeypatch, check_close):
    """The fused walk on packed sequences (``cu_seqlens``: length-1 sequences beside ones of several chunks, a
    ragged last chunk each): one program per (sequence, channel block) walks its own rows. Outputs, ``lse``, the
    final state and the gradients (the scan backward, through the fused walk's ``lse``) equal a loop of the float64
    oracle over the sequences, per-sequence initial states included."""
    from seqlab.kernels.prefix_attention import triton_scan

    launched = _fused_walk_env(monkeypatch, cfg, srep)
    torch.manual_seed(2)
    cu = torch.tensor([0, 1, 70, 71, 72, 137, 138], dtype=torch.int32)
    N, T, H, V = len(cu) - 1, 138, 2, 32
    s, v = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V)
    h0 = (torch.randn(N, H) * 3, torch.randn(N, H, V), torch.rand(N, H) + 0.5) if with_state else None
    do = torch.randn(1, T, H, V)
    xs = [x.clone().requires_grad_() for x in (s, v)]
    o, st = prefix_attention(*xs, initial_state=h0, cu_seqlens=cu, output_final_state=True, backend="triton")
    ((o * do).sum() + st[1].sum()).backward()
    _, _, _, _, lse = triton_scan.prefix_attention_fwd(s, v, *(h0 or (None, None, None)), cu)
    assert launched == [True, True], launched
    for n in range(N):
        a, b = cu[n].item(), cu[n + 1].item()
        h0n = tuple(x[n:n + 1].double() for x in h0) if with_state else None
        ys = [x[:, a:b].double().requires_grad_() for x in (s, v)]
        on, stn = prefix_attention_naive(*ys, h0n, True)
        ((on * do[:, a:b].double()).sum() + stn[1].sum()).backward()
        check_close(f"o[{n}]", o[:, a:b].double(), on.detach(), 1e-5)
        check_close(f"lse[{n}]", lse[:, a:b], _lse_ref(s[:, a:b], h0n), 1e-6)
        for name, x, ref in zip("muw", st, stn):
            check_close(f"{name}[{n}]", x[n:n + 1].double(), ref.detach(), 1e-5)
        check_close(f"ds[{n}]", xs[0].grad[:, a:b].double(), ys[0].grad, 1e-5)
        check_close(f"dv[{n}]", xs[1].grad[:, a:b].double(), ys[1].grad, 1e-5)
