"""The eager twins of the kernel custom ops (``seqlab.kernels._eager``): same values and gradients as the custom op,
no dispatcher round trip in eager mode, the custom op whenever something traces."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from seqlab.kernels import _eager
from seqlab.kernels import scan1 as scan1_mod  # noqa: F401  (registers the ops)
from seqlab.kernels.scan1 import _scan1_fwd, _scan1_fwd_op


def _args(requires_grad=True):
    torch.manual_seed(0)
    g = F.logsigmoid(torch.randn(2, 33, 8)).requires_grad_(requires_grad)
    b = torch.randn(2, 33, 8).requires_grad_(requires_grad)
    h0 = torch.randn(2, 8).requires_grad_(requires_grad)
    return g, b, h0


def test_twin_matches_the_custom_op_with_gradients():
    outs = []
    for fn in (_scan1_fwd, _scan1_fwd_op):
        g, b, h0 = _args()
        h, ht = fn(g, b, h0, None, True, False, True, "torch")
        grads = torch.autograd.grad((h * 1.5).sum() + ht.sum(), (g, b, h0))
        outs.append([h, ht, *grads])
    for x, y in zip(*outs):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_eager_calls_skip_the_op_and_tracing_uses_it(monkeypatch):
    twin = _scan1_fwd
    calls = []

    def op(*a):
        calls.append(a)
        return _scan1_fwd_op(*a)

    monkeypatch.setattr(twin, "op", op)
    g, b, h0 = _args()
    twin(g, b, h0, None, True, False, True, "torch")  # with autograd
    with torch.no_grad():
        twin(g, b, h0, None, True, False, True, "torch")  # plain
    assert not calls
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    fg, fb, fh = (mode.from_tensor(x.detach()) for x in (g, b, h0))
    with mode:
        h, _ = twin(fg, fb, fh, None, True, False, True, "torch")
    assert len(calls) == 1 and h.shape == (2, 33, 8)


def test_call_picks_the_implementation_in_eager(monkeypatch):
    seen = []
    impl = _eager._IMPLS[_scan1_fwd_op]
    monkeypatch.setitem(_eager._IMPLS, _scan1_fwd_op, lambda *a: seen.append(1) or impl(*a))
    g, b, h0 = _args(requires_grad=False)
    _eager.call(_scan1_fwd_op, g, b, h0, None, True, False, True, "torch")
    assert seen == [1]
