"""seqlab.kernels.rms_norm (kernels/rms_norm/): the Triton kernels (interpreter on CPU) against the PyTorch form on
outputs and every gradient, the PyTorch form against core/layers/norm.py in float64, input errors, torch.compile."""
from __future__ import annotations

import copy

import pytest
import torch
from seqlab.core.layers.norm import GatedRMSNorm, RMSNorm
from seqlab.kernels import rms_norm
from seqlab.kernels.rms_norm import rms_norm_ref
from torch import nn

MODES = ["plain", "gate_after_norm", "gate_before_norm"]


def _inputs(shape, mode, with_weight, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    D = shape[-1]
    x = (torch.randn(*shape, generator=g) * 2).to(dtype).requires_grad_()
    z = None if mode == "plain" else torch.randn(*shape, generator=g).to(dtype).requires_grad_()
    w = (torch.rand(D, generator=g) + 0.5).requires_grad_() if with_weight else None
    dy = torch.randn(*shape, generator=g).to(dtype)
    return x, w, z, dy


def _run(fn, x, w, z, dy, mode):
    y = fn(x, w, z, norm_before_gate=(mode != "gate_before_norm"))
    ins = [t for t in (x, w, z) if t is not None]
    return [y, *torch.autograd.grad(y, ins, dy)]


@pytest.mark.parametrize("rows", [1, 5, 67])
@pytest.mark.parametrize("D", [16, 24, 130])
@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_triton_matches_reference(mode, with_weight, D, rows, check_close):
    x, w, z, dy = _inputs((rows, D), mode, with_weight, seed=rows * 1000 + D)
    got = _run(lambda *a, **k: rms_norm(*a, **k, backend="triton"), x, w, z, dy, mode)
    ref = _run(rms_norm_ref, x, w, z, dy, mode)
    names = ["y", "dx"] + (["dweight"] if w is not None else []) + (["dz"] if z is not None else [])
    for name, a, b in zip(names, got, ref):
        assert a.dtype == b.dtype
        check_close(name, a, b, 1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision(mode, dtype, check_close):
    x, w, z, dy = _inputs((2, 9, 40), mode, True, dtype=dtype)
    got = _run(lambda *a, **k: rms_norm(*a, **k, backend="triton"), x, w, z, dy, mode)
    ref = _run(rms_norm_ref, x, w, z, dy, mode)
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype
        check_close("half", a, b, 1e-2)


def test_triton_wide_rows_and_empty_batch(check_close):
    """D = 8192 (BD = D, one row per program) and a batch with no rows."""
    x, w, z, dy = _inputs((3, 8192), "gate_after_norm", True)
    got = _run(lambda *a, **k: rms_norm(*a, **k, backend="triton"), x, w, z, dy, "gate_after_norm")
    ref = _run(rms_norm_ref, x, w, z, dy, "gate_after_norm")
    for a, b in zip(got, ref):
        check_close("wide", a, b, 1e-5)
    x, w, z, dy = _inputs((0, 3, 16), "gate_before_norm", True)
    y, dx, dw, dz = _run(lambda *a, **k: rms_norm(*a, **k, backend="triton"), x, w, z, dy, "gate_before_norm")
    assert y.shape == dx.shape == dz.shape == (0, 3, 16) and torch.equal(dw, torch.zeros(16))


def test_triton_zero_rows_stay_finite():
    x = torch.zeros(4, 24, requires_grad=True)
    w = torch.ones(24, requires_grad=True)
    y = rms_norm(x, w, backend="triton")
    y.sum().backward()
    assert (y == 0).all() and torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize("mode", MODES)
def test_reference_float64_is_core_layer_math(mode):
    """float64 goes through core/layers/norm.py's own code: the kernel's PyTorch form is the same function."""
    x, _, z, dy = _inputs((3, 4, 24), mode, False, dtype=torch.float64)
    layer = RMSNorm(24) if mode == "plain" else GatedRMSNorm(24, norm_before_gate=(mode != "gate_before_norm"))
    layer = layer.double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
    w = layer.weight.detach().clone().requires_grad_()
    ins = [t for t in (x, z) if t is not None]
    y_l = layer(*ins)
    g_l = torch.autograd.grad(y_l, ins + [layer.weight], dy)
    y_k = rms_norm(x, w, z, eps=layer.eps, norm_before_gate=(mode != "gate_before_norm"), backend="torch")
    g_k = torch.autograd.grad(y_k, ins + [w], dy)
    torch.testing.assert_close(y_k, y_l, rtol=0, atol=1e-12)
    for a, b in zip(g_k, g_l):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_core_layers_on_triton_match_float64(mode, monkeypatch, check_close):
    """RMSNorm / GatedRMSNorm in float32 run the kernel (here forced to Triton) and agree with their float64 code."""
    monkeypatch.setenv("SEQLAB_KERNEL_BACKEND", "triton")
    torch.manual_seed(0)
    layer = RMSNorm(20) if mode == "plain" else GatedRMSNorm(20, norm_before_gate=(mode != "gate_before_norm"))
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
    x, z = torch.randn(2, 7, 20), torch.randn(2, 7, 20)
    dy = torch.randn(2, 7, 20)
    res = {}
    for dt in (torch.float32, torch.float64):
        m = copy.deepcopy(layer).to(dt)
        ins = [t.detach().to(dt).clone().requires_grad_() for t in ([x] if mode == "plain" else [x, z])]
        y = m(*ins)
        y.backward(dy.to(dt))
        res[dt] = [y, *(t.grad for t in ins), m.weight.grad]
    for a, b in zip(res[torch.float32], res[torch.float64]):
        assert a.dtype == torch.float32
        check_close(mode, a, b, 1e-5)


def test_float64_takes_torch_path_even_when_triton_asked():
    x = torch.randn(3, 16, dtype=torch.float64)
    assert torch.equal(rms_norm(x, backend="triton"), rms_norm_ref(x))


@pytest.mark.parametrize("call,match", [
    (lambda: rms_norm([1.0, 2.0]), "x must be a torch.Tensor"),
    (lambda: rms_norm(torch.tensor(1.0)), "x must have at least 1 dim"),
    (lambda: rms_norm(torch.randn(3, 0)), "x must have a non-empty last dim"),
    (lambda: rms_norm(torch.randn(3, 8).int()), "x must have dtype"),
    (lambda: rms_norm(torch.randn(8, 3).t()), "x must be contiguous"),
    (lambda: rms_norm(torch.randn(3, 8), torch.ones(7)), r"weight must have shape \[D\]"),
    (lambda: rms_norm(torch.randn(3, 8), torch.ones(2, 8)), "weight must have 1 dims"),
    (lambda: rms_norm(torch.randn(3, 8), None, torch.randn(3, 7)), "z must have shape"),
    (lambda: rms_norm(torch.randn(3, 8), None, torch.randn(8)), "z must have 2 dims"),
    (lambda: rms_norm(torch.randn(3, 8), None, torch.randn(3, 8).half()), "z must have the dtype of x"),
    (lambda: rms_norm(torch.randn(3, 8), eps=-1.0), "eps must be"),
    (lambda: rms_norm(torch.randn(3, 8), eps=float("nan")), "eps must be"),
    (lambda: rms_norm(torch.randn(3, 8), torch.ones(8), torch.randn(3, 8), norm_before_gate=1), "norm_before_gate"),
    (lambda: rms_norm(torch.randn(3, 8), backend="cuda"), "backend must be one of"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_core_layer_errors_unchanged():
    with pytest.raises(ValueError, match="RMSNorm: expected last dimension 8"):
        RMSNorm(8)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="GatedRMSNorm: expected x and z of equal shape"):
        GatedRMSNorm(8)(torch.randn(2, 8), torch.randn(2, 4))


class _Tiny(nn.Module):
    def __init__(self, d: int = 16, backend: str = "triton") -> None:
        super().__init__()
        self.backend = backend
        self.proj = nn.Linear(d, 2 * d)
        self.w1, self.w2 = nn.Parameter(torch.rand(d) + 0.5), nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rms_norm(x, self.w1, backend=self.backend)
        o, g = (t.contiguous() for t in self.proj(h).chunk(2, -1))
        a = rms_norm(o, self.w2, g, norm_before_gate=True, backend=self.backend)
        return rms_norm(a, None, g, norm_before_gate=False, backend=self.backend)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_compile_fullgraph_matches_eager(backend):
    torch.manual_seed(0)
    m = _Tiny(backend=backend)
    x = torch.randn(2, 5, 16)
    explanation = torch._dynamo.explain(m)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    y_c = compiled(x)
    y_c.square().sum().backward()
    grads_c = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    y_e = m(x)
    y_e.square().sum().backward()
    torch.testing.assert_close(y_c, y_e)
    for gc, ge in zip(grads_c, (p.grad for p in m.parameters())):
        torch.testing.assert_close(gc, ge)
