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
@pytest.mark.parametrize("impl", ["fused", "chunked"])
def test_varlen_equals_loop(backend, reverse, impl, monkeypatch, check_close):
    if backend == "torch" and impl == "chunked":
        pytest.skip("the forward form only exists on the Triton path")
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
    torch.manual_seed(0)
    cu = torch.tensor([0, 1, 30, 31, 70, 71])
    T, H, V = 71, 2, 20
    s, v = torch.randn(1, T, H) * 5, torch.randn(1, T, H, V)
    s_, v_ = s.clone().requires_grad_(), v.clone().requires_grad_()
    o, st = prefix_attention(s_, v_, cu_seqlens=cu, output_final_state=True, reverse=reverse, backend=backend)
    (o.square().sum() + st[1].sum()).backward()
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
@pytest.mark.parametrize("impl", ["fused", "chunked"])
def test_forward_forms_match_oracle(T, with_state, reverse, impl, monkeypatch, check_close):
    """Both forward forms (SEQLAB_PREFIX_ATTN_FWD=fused, the default single pass, and chunked, three launches)
    give the oracle's outputs, final state and, through the shared backward, its gradients; an empty initial
    state (w0 = 0) is allowed."""
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
    torch.manual_seed(T)
    B, H, V = 2, 2, 20
    s, v = torch.randn(B, T, H) * 3, torch.randn(B, T, H, V)
    h0 = [torch.randn(B, H) * 3, torch.randn(B, H, V), torch.rand(B, H) + 0.5] if with_state else None
    if with_state:
        h0[1][0, 0], h0[2][0, 0] = 0.0, 0.0  # one empty state
    do, du, dw = torch.randn(B, T, H, V), torch.randn(B, H, V), torch.randn(B, H)
    res = []
    for impl in ("oracle", "triton"):
        xs = [x.clone().requires_grad_() for x in [s, v] + (h0 or [])]
        st0 = tuple(xs[2:]) if with_state else None
        if impl == "oracle":
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
    for n, a, b in zip(["o", "m", "u", "w", "ds", "dv"], res[1], res[0]):
        check_close(f"{impl} {n}", a, b, 1e-5 if n in ("o", "m", "u", "w") else 1e-4)


@pytest.mark.skipif(not triton_available(), reason="triton not importable")
def test_forward_forms_large_scores_and_bad_env(monkeypatch):
    from seqlab.kernels.prefix_attention import triton_scan

    torch.manual_seed(0)
    s, v = torch.randn(1, 65, 2, dtype=torch.float64) * 1e4, torch.randn(1, 65, 2, 8, dtype=torch.float64)
    ref = _masked_softmax_attention(s, v)
    for impl in ("fused", "chunked"):
        monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", impl)
        o, _ = prefix_attention(s.float(), v.float(), backend="triton")
        assert torch.isfinite(o).all() and rel_rmse(o.double(), ref) < 1e-5, impl
    monkeypatch.setenv("SEQLAB_PREFIX_ATTN_FWD", "fast")
    with pytest.raises(ValueError, match="SEQLAB_PREFIX_ATTN_FWD"):
        triton_scan._fwd_impl()
