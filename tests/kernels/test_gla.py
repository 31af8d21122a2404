"""gla: naive oracle vs chunked PyTorch (float64) vs Triton (interpreter, fp32); varlen, reverse, bad inputs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqlab.kernels import gla
from seqlab.kernels._dispatch import triton_available
from seqlab.kernels.gla.reference import gla_chunked, gla_naive
from tests.kernels.conftest import rel_rmse

BACKENDS = ["torch"] + (["triton"] if triton_available() else [])


def _inputs(B, T, H, K, V, dtype=torch.float32, decay=1.0):
    q, k = torch.randn(B, T, H, K, dtype=dtype), torch.randn(B, T, H, K, dtype=dtype)
    v = torch.randn(B, T, H, V, dtype=dtype)
    g = F.logsigmoid(torch.randn(B, T, H, K, dtype=dtype)) * decay
    return q, k, v, g


@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_chunked_equals_naive_float64(T):
    torch.manual_seed(T)
    q, k, v, g = _inputs(2, T, 2, 8, 5, torch.float64, decay=3.0)
    h0 = torch.randn(2, 2, 8, 5, dtype=torch.float64)
    o1, s1 = gla_naive(q, k, v, g, 0.5, h0, True)
    o2, s2 = gla_chunked(q, k, v, g, 0.5, h0, True)
    assert rel_rmse(o2, o1) < 1e-12 and rel_rmse(s2, s1) < 1e-12


def test_chunked_stable_under_strong_decay():
    torch.manual_seed(0)
    q, k, v, _ = _inputs(1, 130, 1, 4, 3, torch.float64)
    g = -torch.rand(1, 130, 1, 4, dtype=torch.float64) * 200
    o1, _ = gla_naive(q, k, v, g, 1.0)
    o2, _ = gla_chunked(q.float(), k.float(), v.float(), g.float(), 1.0)
    assert torch.isfinite(o2).all() and rel_rmse(o2, o1) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [1, 63, 64, 65, 130])
def test_matches_oracle_state_and_grads(backend, T, check_close):
    torch.manual_seed(T)
    B, H, K, V = 2, 2, 16, 20
    ins = [*_inputs(B, T, H, K, V), torch.randn(B, H, K, V)]
    do, dh = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    res = []
    for mode, be in (("naive", None), ("chunk", backend)):
        xs = [x.clone().requires_grad_() for x in ins]
        o, ht = gla(*xs[:4], initial_state=xs[4], output_final_state=True, mode=mode, backend=be)
        ((o * do).sum() + (ht * dh).sum()).backward()
        res.append([o, ht] + [x.grad for x in xs])
    for n, a, b in zip(["o", "ht", "dq", "dk", "dv", "dg", "dh0"], res[1], res[0]):
        check_close(n, a, b, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_varlen_equals_loop(backend, reverse, check_close):
    torch.manual_seed(0)
    cu = torch.tensor([0, 1, 30, 31, 70, 71])
    q, k, v, g = _inputs(1, 71, 2, 16, 16)
    h0 = torch.randn(5, 2, 16, 16)
    o, ht = gla(q, k, v, g, initial_state=h0, output_final_state=True, cu_seqlens=cu, reverse=reverse,
                backend=backend)
    for n in range(5):
        a, b = cu[n].item(), cu[n + 1].item()
        on, hn = gla(*(x[:, a:b] for x in (q, k, v, g)), initial_state=h0[n:n + 1], output_final_state=True,
                     reverse=reverse, mode="naive")
        check_close(f"o[{n}]", o[:, a:b], on, 1e-5)
        check_close(f"ht[{n}]", ht[n:n + 1], hn, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_recurrent_mode(backend):
    torch.manual_seed(0)
    q, k, v, g = _inputs(1, 20, 2, 16, 16)
    o1, _ = gla(q, k, v, g, mode="fused_recurrent", backend=backend)
    o2, _ = gla(q, k, v, g, mode="naive")
    assert rel_rmse(o1, o2) < 1e-5


def test_reverse_is_flip():
    torch.manual_seed(0)
    q, k, v, g = _inputs(2, 37, 2, 8, 4)
    o, _ = gla(q, k, v, g, reverse=True)
    o2, _ = gla(*(x.flip(1).contiguous() for x in (q, k, v, g)))
    assert rel_rmse(o, o2.flip(1)) < 1e-6


def test_compile_fullgraph_torch_backend():
    torch.manual_seed(0)
    q, k, v, g = _inputs(1, 16, 2, 8, 4)
    f = torch.compile(lambda *a: gla(*a, backend="torch")[0], fullgraph=True, backend="eager")
    assert rel_rmse(f(q, k, v, g), gla(q, k, v, g, backend="torch")[0]) < 1e-6


def test_bad_inputs():
    q, k, v, g = _inputs(2, 8, 2, 4, 3)
    with pytest.raises(ValueError, match="k must have shape"):
        gla(q, k[..., :3].contiguous(), v, g)
    with pytest.raises(ValueError, match="g must have shape"):
        gla(q, k, v, g[:, :4].contiguous())
    with pytest.raises(ValueError, match="v must have the dtype of q"):
        gla(q, k, v.half(), g)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        gla(q, k, v, g, initial_state=torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="batch size must be 1"):
        gla(q, k, v, g, cu_seqlens=torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="strictly increasing"):
        gla(*(x[:1] for x in (q, k, v, g)), cu_seqlens=torch.tensor([0, 4, 4, 8]))
    with pytest.raises(ValueError, match="mode"):
        gla(q, k, v, g, mode="fast")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_h0", [False, True])
def test_varlen_grads_equal_loop(backend, with_h0, check_close):
    """Packed sequences (length-1 segments, chunk-crossing ones, odd K/V): every gradient equals the
    per-sequence oracle's."""
    torch.manual_seed(1)
    cu = torch.tensor([0, 1, 66, 67, 100])
    q, k, v, g = _inputs(1, 100, 2, 12, 20)
    h0 = torch.randn(4, 2, 12, 20) if with_h0 else None
    do, dht = torch.randn(1, 100, 2, 20), torch.randn(4, 2, 12, 20)
    xs = [x.clone().requires_grad_() for x in (q, k, v, g)] + ([h0.clone().requires_grad_()] if with_h0 else [])
    o, ht = gla(*xs[:4], initial_state=xs[4] if with_h0 else None, output_final_state=True, cu_seqlens=cu,
                backend=backend)
    ((o * do).sum() + (ht * dht).sum()).backward()
    ys = [x.clone().requires_grad_() for x in (q, k, v, g)] + ([h0.clone().requires_grad_()] if with_h0 else [])
    loss = 0
    for n in range(4):
        a, b = cu[n].item(), cu[n + 1].item()
        on, hn = gla(*(y[:, a:b] for y in ys[:4]), initial_state=ys[4][n:n + 1] if with_h0 else None,
                     output_final_state=True, mode="naive")
        loss = loss + (on * do[:, a:b]).sum() + (hn * dht[n:n + 1]).sum()
    loss.backward()
    for name, x, y in zip(["dq", "dk", "dv", "dg", "dh0"], xs, ys):
        check_close(name, x.grad, y.grad, 1e-5)


def _grads_vs_oracle(ins, do, dh, backend, output_final_state=True, **kw):
    """(outputs and gradients of the chunk path, same of the naive oracle)."""
    res = []
    for mode, be in (("naive", None), ("chunk", backend)):
        xs = [None if x is None else x.clone().requires_grad_() for x in ins]
        o, ht = gla(*xs[:4], initial_state=xs[4], output_final_state=output_final_state, mode=mode, backend=be,
                    **kw)
        loss = (o * do).sum() + ((ht * dh).sum() if output_final_state else 0)
        loss.backward()
        res.append([o] + ([ht] if output_final_state else []) + [x.grad for x in xs if x is not None])
    return res


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [64, 130])
def test_mild_decay_whole_chunk_matmuls(backend, T, check_close):
    """fla's layer gate (logsigmoid / 16: the decay spans about e^3 over a chunk): the Triton forward's scores and
    the backward's intra-chunk dq / dk as one matmul per key block (the decay split at the chunk's first and last
    rows), against the oracle."""
    torch.manual_seed(T)
    B, H, K, V = 2, 2, 20, 16
    q, k, v, g = _inputs(B, T, H, K, V, decay=1 / 16)
    ins = [q, k, v, g, torch.randn(B, H, K, V)]
    do, dh = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    chunk, ref = _grads_vs_oracle(ins, do, dh, backend)
    for n, a, b in zip(["o", "ht", "dq", "dk", "dv", "dg", "dh0"], chunk, ref):
        check_close(n, a, b, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("T", [63, 128])
def test_strong_decay_in_some_channels(backend, T, check_close):
    """Decays of up to e^-30 per step in 10 of 20 key channels: the Triton path's exact fallback for the
    diagonal sub-blocks (log-factor span above 60 inside a sub-chunk) in one key block, the matmul form in the
    other; everything must still match the oracle."""
    torch.manual_seed(T)
    B, H, K, V = 2, 2, 20, 16
    q, k, v, g = _inputs(B, T, H, K, V)
    g[..., :10] = -torch.rand(B, T, H, 10) * 30
    ins = [q, k, v, g, torch.randn(B, H, K, V)]
    do, dh = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    chunk, ref = _grads_vs_oracle(ins, do, dh, backend)
    for n, a, b in zip(["o", "ht", "dq", "dk", "dv", "dg", "dh0"], chunk, ref):
        assert torch.isfinite(a).all(), n
        check_close(n, a, b, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grads_without_final_state_or_h0(backend, check_close):
    """No initial state and no final-state gradient (the backward gets ``dht = None``)."""
    torch.manual_seed(3)
    q, k, v, g = _inputs(1, 70, 2, 16, 16)
    do = torch.randn(1, 70, 2, 16)
    chunk, ref = _grads_vs_oracle([q, k, v, g, None], do, None, backend, output_final_state=False)
    for n, a, b in zip(["o", "dq", "dk", "dv", "dg"], chunk, ref):
        check_close(n, a, b, 1e-5)


@pytest.mark.skipif(not triton_available(), reason="needs triton")
def test_triton_saved_scores_match_reference():
    """The intra-chunk scores the Triton forward saves for the backward equal the PyTorch form's."""
    from seqlab.kernels.gla import triton_chunk
    from seqlab.kernels.gla.reference import intra_chunk_scores

    torch.manual_seed(5)
    B, T, H, K, V = 1, 128, 2, 16, 8
    q, k, v, g = _inputs(B, T, H, K, V)
    _, _, A = triton_chunk.gla_fwd(q, k, v, g, None, None, 0.5, "chunk")  # [B, T, H, 64]
    gc = g.view(B, 2, 64, H, K).cumsum(2)
    ref = intra_chunk_scores(*(x.view(B, 2, 64, H, K).transpose(2, 3) for x in (q * 0.5, k)),
                             gc.transpose(2, 3))  # [B, 2, H, 64, 64]
    assert rel_rmse(A.view(B, 2, 64, H, 64).transpose(2, 3), ref) < 1e-5


@pytest.mark.skipif(not triton_available(), reason="needs triton")
@pytest.mark.parametrize("varlen", [False, True])
def test_triton_custom_op_opcheck(varlen):
    """Schema, fake (meta) implementations and autograd registration of ``seqlab::gla`` (three outputs: o, final
    state, saved scores) and ``seqlab::gla_bwd`` agree with the Triton kernels (``torch.library.opcheck``, incl.
    AOT dispatch, which traces the backward too)."""
    torch.manual_seed(6)
    q, k, v, g = _inputs(1, 70, 1, 16, 16)
    cu = torch.tensor([0, 1, 66, 70]) if varlen else None
    h0 = torch.randn(3 if varlen else 1, 1, 16, 16)
    args = [x.requires_grad_() for x in (q, k, v, g, h0)] + [cu, 0.25, "chunk"]
    torch.library.opcheck(torch.ops.seqlab.gla.default, tuple(args))
    scores = torch.ops.seqlab.gla(*args)[2]
    bargs = (q, k, v, g, h0, scores, cu, 0.25, torch.randn_like(v), torch.randn_like(h0))
    torch.library.opcheck(torch.ops.seqlab.gla_bwd.default, tuple(x.detach() if torch.is_tensor(x) else x
                                                                 for x in bargs))
