"""causal_conv1d: Triton kernels (interpreter, fp32) and the PyTorch path against the F.conv1d oracle."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from seqlab.kernels import causal_conv1d  # noqa: E402
from seqlab.kernels._dispatch import ENV_VAR, triton_available  # noqa: E402
from seqlab.kernels.causal_conv1d import causal_conv1d_ref, causal_conv1d_shifted  # noqa: E402
from seqlab.kernels.causal_conv1d.reference import causal_conv1d_torch_bwd  # noqa: E402

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton not importable")
TS = [1, 3, 63, 64, 65, 130]
WS = [1, 2, 4]
NAMES = ["y", "new_cache", "dx", "dweight", "dbias", "dcache"]


def _inputs(B, T, C, W, seed=0, dtype=torch.float32, bias=True, cache=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=gen, dtype=dtype)
    w = torch.randn(C, W, generator=gen, dtype=dtype) / W ** 0.5
    b = torch.randn(C, generator=gen, dtype=dtype) if bias else None
    c = torch.randn(B, W - 1, C, generator=gen, dtype=dtype) if cache else None
    return x, w, b, c


def _run(fn, x, w, b, c, seed=1):
    """Outputs and the gradients of a fixed random loss on ``y`` and ``new_cache`` w.r.t. (x, w, b, cache)."""
    leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, w, b, c)]
    y, nc = fn(*leaves)
    gen = torch.Generator().manual_seed(seed)
    draw = torch.float64 if y.dtype == torch.float64 else torch.float32  # same cotangents for bf16 and fp32
    gy = torch.randn(y.shape, generator=gen, dtype=draw).to(y.dtype)
    gn = torch.randn(nc.shape, generator=gen, dtype=draw).to(nc.dtype)
    loss = (y * gy).sum() + (nc * gn).sum()
    live = [t for t in leaves if t is not None]
    grads = iter(torch.autograd.grad(loss, live))
    return [y.detach(), nc.detach(), *[next(grads) if t is not None else None for t in leaves]]


def _compare(check_close, tag, got, ref, tol):
    for name, g, r in zip(NAMES, got, ref):
        if r is None:
            assert g is None, f"{tag} {name}: expected no gradient"
            continue
        if r.numel() == 0:
            assert g.shape == r.shape, f"{tag} {name}: shape {tuple(g.shape)} != {tuple(r.shape)}"
            continue
        check_close(f"{tag} {name}", g, r, tol)


def _ours(backend, activation):
    return lambda x, w, b, c: causal_conv1d(x, w, b, activation=activation, cache=c, backend=backend)


def _oracle(activation):
    return lambda x, w, b, c: causal_conv1d_ref(x, w, b, activation, c)


CASES = [(T, W, bias, act, cache) for T in TS for W in WS for bias in (False, True) for act in (None, "silu")
         for cache in (False, True)]


@needs_triton
@pytest.mark.parametrize("T,W,bias,activation,cache", CASES)
def test_triton_matches_oracle(T, W, bias, activation, cache, check_close):
    x, w, b, c = _inputs(2, T, 6, W, seed=T * 10 + W, bias=bias, cache=cache)
    got = _run(_ours("triton", activation), x, w, b, c)
    ref = _run(_oracle(activation), x, w, b, c)
    _compare(check_close, f"triton T={T} W={W}", got, ref, 1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
@pytest.mark.parametrize("W", [3, 8])
def test_several_channel_blocks_and_wide_kernels(backend, W, check_close):
    """C = 70 spans two channel blocks of 64; W = 3 and 8 (odd and widest typical) with both features on."""
    x, w, b, c = _inputs(2, 65, 70, W, seed=W)
    got = _run(_ours(backend, "silu"), x, w, b, c)
    ref = _run(_oracle("silu"), x, w, b, c)
    _compare(check_close, f"{backend} C=70 W={W}", got, ref, 1e-5)


@pytest.mark.parametrize("T,W,bias,activation,cache",
                         [(T, W, True, a, k) for T in (1, 65) for W in (1, 4) for a in (None, "silu")
                          for k in (False, True)])
def test_torch_backend_matches_oracle(T, W, bias, activation, cache, check_close):
    x, w, b, c = _inputs(2, T, 6, W, seed=T + W, bias=bias, cache=cache)
    got = _run(_ours("torch", activation), x, w, b, c)
    ref = _run(_oracle(activation), x, w, b, c)
    _compare(check_close, f"torch T={T} W={W}", got, ref, 1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
@pytest.mark.parametrize("W,splits", [(4, [61, 130]), (4, [1, 3, 70]), (2, [64, 65]), (1, [5, 9])])
def test_chunks_with_carried_cache_equal_whole(backend, W, splits, check_close):
    """Feeding new_cache forward chunk by chunk gives the whole-sequence outputs and gradients
    (chunks shorter than W - 1 included: their new_cache keeps old cache rows)."""
    T = splits[-1]
    x, w, b, c = _inputs(2, T, 6, W, seed=W + T)

    def chunked(x_, w_, b_, c_):
        ys, cache, start = [], c_, 0
        for end in splits:
            y, cache = causal_conv1d(x_[:, start:end].contiguous(), w_, b_, activation="silu", cache=cache,
                                     backend=backend)
            ys.append(y)
            start = end
        return torch.cat(ys, 1), cache

    got = _run(chunked, x, w, b, c)
    ref = _run(_ours(backend, "silu"), x, w, b, c)
    _compare(check_close, f"{backend} chunks {splits}", got, ref, 1e-6)


@pytest.mark.parametrize("T,W", [(1, 4), (2, 4), (7, 1), (33, 3), (65, 4)])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_torch_forms_float64(T, W, activation):
    """Shifted-sum form = F.conv1d oracle, analytic backward = autograd through the oracle (float64)."""
    x, w, b, c = _inputs(2, T, 5, W, seed=T, dtype=torch.float64)
    y_ref, nc_ref = causal_conv1d_ref(x, w, b, activation, c)
    y, nc = causal_conv1d_shifted(x, w, b, activation, c)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(nc, nc_ref, rtol=1e-12, atol=1e-12)
    ref = _run(_oracle(activation), x, w, b, c)
    gen = torch.Generator().manual_seed(1)  # the cotangents _run draws
    dy = torch.randn(y.shape, generator=gen, dtype=y.dtype)
    dn = torch.randn(nc.shape, generator=gen, dtype=nc.dtype)
    got = causal_conv1d_torch_bwd(x, w, b, activation, c, dy, dn)
    for name, g, r in zip(NAMES[2:], got, ref[2:]):
        assert g.dtype == torch.float64, name
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12, msg=name)


@needs_triton
def test_triton_low_precision_inputs(check_close):
    """bf16 / fp16 activations with float32 taps: outputs in x.dtype, grads in the input dtypes."""
    for dtype in (torch.bfloat16, torch.float16):
        x, w, b, c = _inputs(2, 40, 6, 4, seed=3)
        xl, cl = x.to(dtype), c.to(dtype)
        got = _run(_ours("triton", "silu"), xl, w, b, cl)
        ref = _run(_oracle("silu"), xl.float(), w, b, cl.float())
        assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == dtype
        assert got[3].dtype == torch.float32 and got[5].dtype == dtype
        _compare(check_close, f"triton {dtype}", got, ref, 1e-2)


def test_default_backend_on_cpu_is_torch(monkeypatch, check_close):
    monkeypatch.delenv(ENV_VAR, raising=False)
    x, w, b, c = _inputs(1, 9, 4, 4)
    y, nc = causal_conv1d(x, w, b, activation="silu", cache=c)
    y_ref, nc_ref = causal_conv1d_ref(x, w, b, "silu", c)
    check_close("y", y, y_ref, 1e-6)
    check_close("new_cache", nc, nc_ref, 1e-6)


def _bad(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        causal_conv1d(*args, backend="torch", **kwargs)


def test_bad_inputs_raise_value_error():
    x, w, b, c = _inputs(2, 5, 6, 4)
    _bad(r"x must have 3 dims \[B, T, C\]", x[0], w)
    _bad(r"weight must have 2 dims \[C, W\]", x, w[:, None])
    _bad(r"weight must have shape \[C, W\]", x, w[:5])
    _bad(r"W >= 1", x, w[:, :0])
    _bad(r"bias must have shape \[C\]", x, w, b[:4])
    _bad(r"cache must have shape \[B, W-1, C\] = \[2, 3, 6\]", x, w, b, cache=c[:, :2])
    _bad(r"cache must have shape \[B, W-1, C\]", x, w, b, cache=c[:1])
    _bad(r"cache must have shape \[B, W-1, C\]", x, w, b, cache=c[..., :5])
    _bad(r"cache must have 3 dims", x, w, b, cache=c[0])
    _bad(r"x must have dtype in", x.double(), w)
    _bad(r"weight must have dtype in", x, w.long())
    _bad(r"cache must have the dtype of x", x, w, cache=c.half())
    _bad(r"activation must be one of", x, w, activation="relu")
    _bad(r"x must be contiguous", x.transpose(0, 1).contiguous().transpose(0, 1), w)
    with pytest.raises(ValueError, match="backend must be one of"):
        causal_conv1d(x, w, backend="cuda")


class _ShortConv(nn.Module):
    def __init__(self, d: int = 8, width: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.weight = nn.Parameter(torch.randn(d, width) / width ** 0.5)
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, new_cache = causal_conv1d(self.proj(x).contiguous(), self.weight, self.bias, activation="silu",
                                     cache=cache, backend="torch")
        return y, new_cache


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    m = _ShortConv()
    x, cache = torch.randn(2, 11, 8), torch.randn(2, 3, 8)
    explanation = torch._dynamo.explain(m)(x, cache)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y_c, nc_c = compiled(x, cache)
    (y_c.square().sum() + nc_c.sum()).backward()
    grads_c = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    y_e, nc_e = m(x, cache)
    (y_e.square().sum() + nc_e.sum()).backward()
    torch.testing.assert_close(y_c, y_e)
    torch.testing.assert_close(nc_c, nc_e)
    for gc, ge in zip(grads_c, (p.grad for p in m.parameters())):
        torch.testing.assert_close(gc, ge)


# Varlen: lengths 0, 1, 2, 0, 7, 60, 1 (empty and length-1 sequences, lengths below W - 1, a sequence that crosses
# the 64-row time block of the forward, and padded xp rows crossing blocks in the backward).
OFFSETS = [0, 0, 1, 3, 3, 10, 70, 71]


def _per_sequence(backend, activation, offsets):
    """A loop of dense B = 1 calls, one per packed sequence, with that sequence's cache row."""

    def fn(x, w, b, c):
        ys, caches = [], []
        for n in range(len(offsets) - 1):
            x_n = x[:, offsets[n]:offsets[n + 1]].contiguous()
            y, nc = causal_conv1d(x_n, w, b, activation=activation, cache=None if c is None else c[n:n + 1],
                                  backend=backend)
            ys.append(y)
            caches.append(nc)
        return torch.cat(ys, 1), torch.cat(caches, 0)

    return fn


def _varlen(backend, activation, cu_seqlens):
    return lambda x, w, b, c: causal_conv1d(x, w, b, activation=activation, cache=c, cu_seqlens=cu_seqlens,
                                            backend=backend)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
@pytest.mark.parametrize("W", WS)
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("cache", [False, True])
def test_varlen_matches_per_sequence_loop(backend, W, activation, cache, check_close):
    """Packed sequences = one dense call per sequence: y, new_cache [N, W - 1, C] and every gradient
    (through new_cache too); halo rows never cross a sequence start."""
    N, T = len(OFFSETS) - 1, OFFSETS[-1]
    x, w, b, _ = _inputs(1, T, 6, W, seed=W, bias=cache)
    c = torch.randn(N, W - 1, 6, generator=torch.Generator().manual_seed(7)) if cache else None
    cu = torch.tensor(OFFSETS, dtype=torch.int32)
    got = _run(_varlen(backend, activation, cu), x, w, b, c)
    ref = _run(_per_sequence(backend, activation, OFFSETS), x, w, b, c)
    assert got[1].shape == (N, W - 1, 6)
    _compare(check_close, f"{backend} varlen W={W}", got, ref, 1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
def test_varlen_two_channel_blocks_int64_offsets(backend, check_close):
    """C = 70 (two channel blocks), int64 offsets, the second sequence starting inside the first time block."""
    offsets = [0, 5, 5, 69, 70]
    x, w, b, _ = _inputs(1, 70, 70, 4, seed=11)
    c = torch.randn(4, 3, 70, generator=torch.Generator().manual_seed(12))
    got = _run(_varlen(backend, "silu", torch.tensor(offsets, dtype=torch.int64)), x, w, b, c)
    ref = _run(_per_sequence(backend, "silu", offsets), x, w, b, c)
    _compare(check_close, f"{backend} varlen C=70", got, ref, 1e-5)


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "torch"])
def test_varlen_all_empty_passes_cache_through(backend):
    """T = 0 with N = 2 empty sequences: y is empty, new_cache is the cache, d cache = d new_cache."""
    x = torch.zeros(1, 0, 3)
    w, c = torch.randn(3, 4), torch.randn(2, 3, 3, requires_grad=True)
    y, nc = causal_conv1d(x, w, cache=c, cu_seqlens=torch.tensor([0, 0, 0]), backend=backend)
    assert y.shape == (1, 0, 3)
    torch.testing.assert_close(nc, c.detach())
    g = torch.randn(2, 3, 3)
    (dc,) = torch.autograd.grad((nc * g).sum(), [c])
    torch.testing.assert_close(dc, g)


def test_varlen_fake_shapes_without_reading_offsets():
    """The fake (meta) implementation gives y [1, T, C] and new_cache [N, W - 1, C] from cu_seqlens' shape alone."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, w = torch.randn(1, 9, 6), torch.randn(6, 4)
        cu = torch.zeros(4, dtype=torch.int32)  # values unknown to the fake implementation
        y, nc = torch.ops.seqlab.causal_conv1d_fwd(x, w, None, torch.randn(3, 3, 6), cu, "silu", "triton")
    assert tuple(y.shape) == (1, 9, 6) and tuple(nc.shape) == (3, 3, 6)


def test_varlen_bad_offsets_raise_value_error():
    x, w, b, _ = _inputs(1, 8, 6, 4)
    c = torch.randn(3, 3, 6)

    def cu(*offs, dtype=torch.int32):
        return torch.tensor(offs, dtype=dtype)

    _bad(r"cu_seqlens must start at 0", x, w, b, cache=c, cu_seqlens=cu(1, 3, 5, 8))
    _bad(r"cu_seqlens must be non-decreasing", x, w, b, cache=c, cu_seqlens=cu(0, 5, 4, 8))
    _bad(r"cu_seqlens must end at T = 8", x, w, b, cache=c, cu_seqlens=cu(0, 3, 5, 7))
    _bad(r"batch size must be 1 when cu_seqlens is given", torch.randn(2, 8, 6), w, cu_seqlens=cu(0, 8))
    _bad(r"cache must have shape \[N, W-1, C\] = \[3, 3, 6\] \(N = 3 from cu_seqlens\)", x, w, b, cache=c[:1],
         cu_seqlens=cu(0, 3, 5, 8))
    _bad(r"cu_seqlens must have dtype int32 or int64", x, w, cu_seqlens=cu(0, 8, dtype=torch.float32))
    _bad(r"cu_seqlens must be a 1-D tensor", x, w, cu_seqlens=cu(0, 8)[None])
