"""The fused L2 normalisation of ``delta_rule(..., qk_l2norm=True)`` (kernels/delta_rule/triton_l2norm.py): the Triton
kernels (interpreter on CPU) against the PyTorch form on outputs and gradients, and through the op."""
import pytest
import torch
from seqlab.kernels import delta_rule
from seqlab.kernels.delta_rule.reference import l2norm_reference


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("shape", [(1, 5, 2, 16), (2, 3, 1, 24), (1, 1, 3, 128)])
def test_l2norm_triton_matches_reference_outputs_and_grads(shape):
    from seqlab.kernels.delta_rule.triton_l2norm import l2norm_triton
    torch.manual_seed(0)
    x = (torch.randn(*shape) * 3).requires_grad_()
    dy = torch.randn(*shape)
    y_ref = l2norm_reference(x.double())
    (gx_ref,) = torch.autograd.grad(y_ref, x, dy.double())
    y = l2norm_triton(x)
    (gx,) = torch.autograd.grad(y, x, dy)
    assert _rel(y, y_ref) < 1e-6
    assert _rel(gx, gx_ref) < 1e-5
    assert torch.allclose(y.norm(dim=-1), torch.ones(shape[:-1]), atol=1e-5)


def test_l2norm_zero_rows_stay_finite():
    from seqlab.kernels.delta_rule.triton_l2norm import l2norm_triton
    x = torch.zeros(1, 2, 1, 16, requires_grad=True)
    y = l2norm_triton(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all() and (y == 0).all()


def test_delta_rule_qk_l2norm_triton_equals_torch():
    torch.manual_seed(1)
    B, T, H, K, V = 1, 70, 2, 16, 16
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K) * 2, torch.randn(B, T, H, V)
    beta = torch.rand(B, T, H)
    res = {}
    for be in ("torch", "triton"):
        xs = [x.clone().requires_grad_() for x in (q, k, v, beta)]
        o, _ = delta_rule(*xs, qk_l2norm=True, backend=be)
        res[be] = [o] + list(torch.autograd.grad(o.square().sum(), xs))
    for a, b in zip(res["triton"], res["torch"]):
        assert _rel(a, b) < 1e-5
