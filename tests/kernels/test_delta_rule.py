"""delta_rule: naive oracle vs chunked WY form (float64) vs Triton (interpreter, fp32); gated, varlen, reverse."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from seqlab.kernels import delta_rule
from seqlab.kernels._dispatch import triton_available
from seqlab.kernels.delta_rule.reference import delta_rule_chunked, delta_rule_naive

from tests.kernels.conftest import rel_rmse

BACKENDS = ["torch"] + (["triton"] if triton_available() else [])


def _inputs(B, T, H, K, V, dtype=torch.float32, gated=True):
    q = torch.randn(B, T, H, K, dtype=dtype)
    k = F.normalize(torch.randn(B, T, H, K, dtype=dtype), dim=-1)
    v = torch.randn(B, T, H, V, dtype=dtype)
    beta = torch.rand(B, T, H, dtype=dtype)
    g = F.logsigmoid(torch.randn(B, T, H, dtype=dtype)) if gated else None
    return q, k, v, beta, g


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_chunked_equals_naive_float64(T, gated):
    torch.manual_seed(T)
    q, k, v, beta, g = _inputs(2, T, 2, 8, 5, torch.float64, gated)
    h0 = torch.randn(2, 2, 8, 5, dtype=torch.float64)
    o1, s1 = delta_rule_naive(q, k, v, 2 * beta, g, 0.5, h0, True)
    o2, s2 = delta_rule_chunked(q, k, v, 2 * beta, g, 0.5, h0, True)
    assert rel_rmse(o2, o1) < 1e-11 and rel_rmse(s2, s1) < 1e-11


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_matches_oracle_state_and_grads(backend, gated, T, check_close):
    torch.manual_seed(T)
    B, H, K, V = 2, 2, 16, 20
    ins = [*_inputs(B, T, H, K, V, gated=gated), torch.randn(B, H, K, V)]
    do, dh = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    res = []
    for mode, be in (("naive", None), ("chunk", backend)):
        xs = [None if x is None else x.clone().requires_grad_() for x in ins]
        o, ht = delta_rule(*xs[:5], initial_state=xs[5], output_final_state=True, allow_neg_eigval=True,
                           mode=mode, backend=be)
        ((o * do).sum() + (ht * dh).sum()).backward()
        res.append([o, ht] + [x.grad for x in xs if x is not None])
    names = ["o", "ht", "dq", "dk", "dv", "dbeta"] + (["dg"] if gated else []) + ["dh0"]
    for n, a, b in zip(names, res[1], res[0]):
        check_close(n, a, b, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_varlen_equals_loop(backend, reverse, check_close):
    torch.manual_seed(0)
    cu = torch.tensor([0, 1, 30, 31, 70, 71])
    q, k, v, beta, g = _inputs(1, 71, 2, 16, 16)
    h0 = torch.randn(5, 2, 16, 16)
    o, ht = delta_rule(q, k, v, beta, g, initial_state=h0, output_final_state=True, cu_seqlens=cu,
                       reverse=reverse, qk_l2norm=True, backend=backend)
    for n in range(5):
        a, b = cu[n].item(), cu[n + 1].item()
        on, hn = delta_rule(*(x[:, a:b] for x in (q, k, v, beta, g)), initial_state=h0[n:n + 1],
                            output_final_state=True, reverse=reverse, qk_l2norm=True, mode="naive")
        check_close(f"o[{n}]", o[:, a:b], on, 1e-5)
        check_close(f"ht[{n}]", ht[n:n + 1], hn, 1e-5)


def test_qk_l2norm_and_neg_eigval_semantics():
    torch.manual_seed(0)
    q, k, v, beta, g = _inputs(1, 20, 2, 8, 4)
    k2 = k * 3
    o1, _ = delta_rule(q, k2, v, beta, g, qk_l2norm=True, allow_neg_eigval=True)
    o2, _ = delta_rule(F.normalize(q, dim=-1), k, v, 2 * beta, g, mode="naive")
    assert rel_rmse(o1, o2) < 1e-5


def test_reverse_is_flip():
    torch.manual_seed(0)
    q, k, v, beta, g = _inputs(2, 37, 2, 8, 4)
    o, _ = delta_rule(q, k, v, beta, g, reverse=True)
    o2, _ = delta_rule(*(x.flip(1).contiguous() for x in (q, k, v, beta, g)))
    assert rel_rmse(o, o2.flip(1)) < 1e-6


def test_compile_fullgraph_torch_backend():
    torch.manual_seed(0)
    q, k, v, beta, g = _inputs(1, 16, 2, 8, 4)
    f = torch.compile(lambda *a: delta_rule(*a, backend="torch")[0], fullgraph=True, backend="eager")
    assert rel_rmse(f(q, k, v, beta, g), delta_rule(q, k, v, beta, g, backend="torch")[0]) < 1e-6


def test_bad_inputs():
    q, k, v, beta, g = _inputs(2, 8, 2, 4, 3)
    with pytest.raises(ValueError, match="beta must have shape"):
        delta_rule(q, k, v, beta[:, :4].contiguous())
    with pytest.raises(ValueError, match="g must have 3 dims"):
        delta_rule(q, k, v, beta, g[..., None])
    with pytest.raises(ValueError, match="initial_state must have dtype"):
        delta_rule(q, k, v, beta, initial_state=torch.zeros(2, 2, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="must end at T"):
        delta_rule(*(x[:1] for x in (q, k, v, beta)), cu_seqlens=torch.tensor([0, 4, 7]))
    with pytest.raises(ValueError, match="q must have 4 dims"):
        delta_rule(q[0], k, v, beta)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_h0", [False, True])
def test_varlen_grads_equal_loop(backend, with_h0, check_close):
    """Packed sequences (length-1 segments, chunk-crossing ones, odd K/V), gated: every gradient equals the
    per-sequence oracle's."""
    torch.manual_seed(1)
    cu = torch.tensor([0, 1, 66, 67, 100])
    q, k, v, beta, g = _inputs(1, 100, 2, 12, 20)
    h0 = torch.randn(4, 2, 12, 20) if with_h0 else None
    do, dht = torch.randn(1, 100, 2, 20), torch.randn(4, 2, 12, 20)
    base = [q, k, v, beta, g] + ([h0] if with_h0 else [])
    xs = [x.clone().requires_grad_() for x in base]
    o, ht = delta_rule(*xs[:5], initial_state=xs[5] if with_h0 else None, output_final_state=True,
                       allow_neg_eigval=True, cu_seqlens=cu, backend=backend)
    ((o * do).sum() + (ht * dht).sum()).backward()
    ys = [x.clone().requires_grad_() for x in base]
    loss = 0
    for n in range(4):
        a, b = cu[n].item(), cu[n + 1].item()
        on, hn = delta_rule(*(y[:, a:b] for y in ys[:5]), initial_state=ys[5][n:n + 1] if with_h0 else None,
                            output_final_state=True, allow_neg_eigval=True, mode="naive")
        loss = loss + (on * do[:, a:b]).sum() + (hn * dht[n:n + 1]).sum()
    loss.backward()
    for name, x, y in zip(["dq", "dk", "dv", "dbeta", "dg", "dh0"], xs, ys):
        check_close(name, x.grad, y.grad, 1e-5)


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
def test_triton_several_key_value_blocks_strong_decay(check_close):
    """K = V = 80: two key / value tiles of 64 in the chunk kernels (masked tails) and three value blocks in the
    state kernels; strong decays (log gate down to -8 per step); every gradient against the oracle."""
    torch.manual_seed(3)
    B, T, H, K, V = 1, 130, 1, 80, 80
    q, k, v, beta, _ = _inputs(B, T, H, K, V)
    g = F.logsigmoid(torch.randn(B, T, H)) * 8
    ins = [q, k, v, beta, g, torch.randn(B, H, K, V)]
    do, dh = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    res = []
    for mode, be in (("naive", None), ("chunk", "triton")):
        xs = [x.clone().requires_grad_() for x in ins]
        o, ht = delta_rule(*xs[:5], initial_state=xs[5], output_final_state=True, allow_neg_eigval=True,
                           mode=mode, backend=be)
        ((o * do).sum() + (ht * dh).sum()).backward()
        res.append([o, ht] + [x.grad for x in xs])
    for n, a, b in zip(["o", "ht", "dq", "dk", "dv", "dbeta", "dg", "dh0"], res[1], res[0]):
        check_close(n, a, b, 1e-5)


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
@pytest.mark.parametrize("gated", [False, True])
def test_triton_blockwise_inverse_equals_dense_inverse(gated):
    """The saved ``Ai`` (16 x 16 diagonal inverses merged block-wise) equals ``(I + A)^{-1}`` from a dense solve,
    zeros above the diagonal included, for beta up to 2 (negative eigenvalues)."""
    from seqlab.kernels.delta_rule.triton_chunk import CHUNK, delta_rule_fwd
    torch.manual_seed(4)
    B, T, H, K, V = 1, 128, 2, 32, 16
    q, k, v, beta, g = _inputs(B, T, H, K, V, gated=gated)
    beta = 2 * beta
    ai = delta_rule_fwd(q, k, v, beta, g, None, None, K ** -0.5)[2]  # [NT, C, H, C]
    kc = k.view(-1, CHUNK, H, K).transpose(1, 2).double()
    bc = beta.view(-1, CHUNK, H).transpose(1, 2).double()
    gc = (g.view(-1, CHUNK, H).transpose(1, 2).double().cumsum(-1) if gated else torch.zeros_like(bc))
    a = (bc[..., None] * (kc @ kc.transpose(-1, -2)) * (gc[..., :, None] - gc[..., None, :]).exp()).tril(-1)
    ref = torch.linalg.inv(torch.eye(CHUNK, dtype=torch.float64) + a)
    assert rel_rmse(ai.transpose(1, 2), ref) < 1e-6


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
@pytest.mark.parametrize("varlen", [False, True])
def test_triton_custom_ops_opcheck(varlen):
    """Fake (meta) implementations, schema and autograd registration of ``seqlab::delta_rule`` and
    ``seqlab::delta_rule_bwd`` agree with the real Triton kernels (``torch.library.opcheck``); with ``cu_seqlens``
    the saved per-chunk tensors use the static chunk-count bound."""
    torch.manual_seed(5)
    q, k, v, beta, g = _inputs(1, 70, 1, 16, 16)
    cu = torch.tensor([0, 1, 66, 70]) if varlen else None
    h0 = torch.randn(3 if varlen else 1, 1, 16, 16)
    args = (q, k, v, beta, g, h0, cu, 0.25, "chunk")
    torch.library.opcheck(torch.ops.seqlab.delta_rule.default, args)  # incl. AOT dispatch (torch.compile path)
    _, _, ai, w, hs, vn = torch.ops.seqlab.delta_rule(*args)
    bargs = (q, k, v, beta, g, h0, cu, ai, w, hs, vn, torch.randn_like(v), torch.randn_like(h0), 0.25)
    torch.library.opcheck(torch.ops.seqlab.delta_rule_bwd.default, bargs)


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
def test_wide_keys_fall_back_to_torch(monkeypatch):
    """K > MAX_TRITON_K takes the PyTorch chunked form even with backend='triton' (the Triton launcher must not
    be reached) and still matches the oracle."""
    from seqlab.kernels.delta_rule import MAX_TRITON_K, triton_chunk

    def boom(*a, **kw):
        raise AssertionError("Triton path used for K > MAX_TRITON_K")

    monkeypatch.setattr(triton_chunk, "delta_rule_fwd", boom)
    torch.manual_seed(6)
    q, k, v, beta, g = _inputs(1, 9, 1, MAX_TRITON_K + 8, 4)
    o, ht = delta_rule(q, k, v, beta, g, output_final_state=True, backend="triton")
    o2, ht2 = delta_rule(q, k, v, beta, g, output_final_state=True, mode="naive")
    assert rel_rmse(o, o2) < 1e-5 and rel_rmse(ht, ht2) < 1e-5
    with pytest.raises(AssertionError, match="Triton path used"):
        delta_rule(*(x[..., :16].contiguous() for x in (q, k)), v, beta, g, backend="triton")


@pytest.mark.skipif(not triton_available(), reason="triton not installed")
def test_triton_16bit_storage_path(check_close):
    """float16 inputs (the interpreter's bfloat16 dot is broken, float16 is exact there): 16-bit dot operands and
    16-bit stored intermediates (Ai, w, u, h, v', dh, partial grads) stay within float16 rounding of the float32
    chunked form on the same values; outputs come back in the input dtypes."""
    torch.manual_seed(7)
    B, T, H, K, V = 1, 130, 1, 32, 32
    q, k, v, beta, _ = (None if x is None else x.half() for x in _inputs(B, T, H, K, V))
    g = F.logsigmoid(torch.randn(B, T, H))
    ins = [q, k, v, beta, g, torch.randn(B, H, K, V)]
    do, dht = torch.randn(B, T, H, V).half(), torch.randn(B, H, K, V)
    res = []
    for be, to32 in (("torch", True), ("triton", False)):
        xs = [(x.float() if to32 else x).clone().requires_grad_() for x in ins]
        o, ht = delta_rule(*xs[:5], initial_state=xs[5], output_final_state=True, allow_neg_eigval=True, backend=be)
        loss = (o.float() * do.float()).sum() + (ht * dht).sum()
        res.append([o, ht, *torch.autograd.grad(loss, xs)])
    assert [x.dtype for x in res[1]] == [torch.float16, torch.float32] + [torch.float16] * 4 + [torch.float32] * 2
    for n, a, b in zip(["o", "ht", "dq", "dk", "dv", "dbeta", "dg", "dh0"], res[1], res[0]):
        check_close(n, a, b, 3e-3)
