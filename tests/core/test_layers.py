"""Shared layers: norms, the causal short convolution with its cache, rotary embedding, MLPs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from seqlab.core.layers import MLP, GatedRMSNorm, RMSNorm, RotaryEmbedding, ShortConvolution, SwiGLU


def test_rmsnorm_matches_formula_and_torch():
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    n = RMSNorm(8).double()
    with torch.no_grad():
        n.weight.uniform_(0.5, 1.5)
    ref = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * n.weight
    assert torch.allclose(n(x), ref, atol=1e-12)
    t = torch.nn.RMSNorm(8, eps=1e-5).double()
    t.weight.data.copy_(n.weight.data)
    assert torch.allclose(n(x), t(x), atol=1e-12)
    with pytest.raises(ValueError, match="RMSNorm"):
        n(torch.randn(2, 7, dtype=torch.float64))


def test_rmsnorm_half_precision_computes_in_float32():
    x = torch.randn(4, 16).bfloat16()
    y = RMSNorm(16)(x)
    assert y.dtype == torch.bfloat16
    ref = RMSNorm(16)(x.float())
    assert torch.allclose(y.float(), ref, atol=2e-2)


@pytest.mark.parametrize("before", [True, False])
def test_gated_rmsnorm_orders(before):
    x, z = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    n = GatedRMSNorm(8, norm_before_gate=before).double()
    rms = RMSNorm(8).double()
    ref = rms(x) * F.silu(z) if before else rms(x * F.silu(z))
    assert torch.allclose(n(x, z), ref, atol=1e-12)
    with pytest.raises(ValueError, match="GatedRMSNorm"):
        n(x, z[:, :4])


@pytest.mark.parametrize("dilation,groups", [(1, None), (2, None), (3, 4)])
def test_short_convolution_is_causal_conv_and_cache_continues(dilation, groups):
    torch.manual_seed(0)
    c_in = 8
    conv = ShortConvolution(c_in, 3, dilation=dilation, groups=groups, out_channels=4 if groups else None,
                            activation="silu").double()
    x = torch.randn(2, 17, c_in, dtype=torch.float64)
    y, cache = conv(x)
    pad = (3 - 1) * dilation
    ref = F.silu(F.conv1d(F.pad(x.transpose(1, 2), (pad, 0)), conv.weight, conv.bias, dilation=dilation,
                          groups=conv.groups)).transpose(1, 2)
    assert torch.allclose(y, ref, atol=1e-12)
    assert cache.shape == (2, c_in, pad)
    y1, c1 = conv(x[:, :6])
    y2, _ = conv(x[:, 6:], c1)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-12)
    steps, c = [], conv.init_cache(2, dtype=torch.float64)
    for t in range(x.shape[1]):
        yt, c = conv(x[:, t:t + 1], c)
        steps.append(yt)
    assert torch.allclose(torch.cat(steps, 1), y, atol=1e-12)


def test_short_convolution_bad_input():
    conv = ShortConvolution(4, 3)
    with pytest.raises(ValueError, match=r"\[B, T, 4\]"):
        conv(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="cache"):
        conv(torch.randn(2, 5, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="activation"):
        ShortConvolution(4, 3, activation="gelu")


def test_rotary_preserves_norm_and_is_relative():
    rot = RotaryEmbedding(8)
    q = torch.randn(1, 6, 2, 8, dtype=torch.float64)
    k = torch.randn(1, 6, 2, 8, dtype=torch.float64)
    rq = rot(q)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-12)
    # the score depends only on the distance: shifting both positions by 5 keeps q.k
    s0 = (rot(q) * rot(k)).sum(-1)
    s5 = (rot(q, offset=5) * rot(k, offset=5)).sum(-1)
    assert torch.allclose(s0, s5, atol=1e-10)
    # offset continues positions: the tail of a long call equals a call with the offset
    assert torch.allclose(rot(q)[:, 3:], rot(q[:, 3:], offset=3), atol=1e-12)
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_partial_rotary_leaves_the_rest():
    rot = RotaryEmbedding(4)
    q = torch.randn(1, 3, 1, 8)
    assert torch.equal(rot(q, 2)[..., 4:], q[..., 4:])


def test_mlps_shapes_and_swiglu_formula():
    x = torch.randn(2, 3, 12)
    assert MLP(12)(x).shape == x.shape
    m = SwiGLU(12, hidden=20)
    assert m(x).shape == x.shape
    ref = m.down(F.silu(m.gate(x)) * m.up(x))
    assert torch.allclose(m(x), ref)
    assert SwiGLU(12).gate.out_features % 8 == 0


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_short_conv_fused_path_equals_conv1d_path(backend, monkeypatch):
    """The depthwise SiLU ShortConvolution runs through seqlab.kernels.causal_conv1d ([B, T, C], no transposes);
    it equals the F.conv1d path (float64 here) on outputs, caches and gradients, with a cache carried."""
    from seqlab.core.layers.conv import ShortConvolution
    monkeypatch.setenv("SEQLAB_KERNEL_BACKEND", backend)
    torch.manual_seed(0)
    conv = ShortConvolution(6, 4, activation="silu")
    x = torch.randn(2, 9, 6)
    cache = torch.randn(2, 6, 3)
    assert conv._fused_ok(x) and not conv._fused_ok(x.double())
    res = {}
    for name, xx, cc in (("fused", x, cache), ("conv1d", x.double(), cache.double())):
        conv.zero_grad()
        m = conv.double() if name == "conv1d" else conv.float()
        xs = xx.clone().requires_grad_()
        y1, c1 = m(xs[:, :5], cc)
        y2, c2 = m(xs[:, 5:], c1)
        (y1.square().sum() + (y2 * 3).sum() + c2.sum()).backward()
        res[name] = [y1, y2, c2, xs.grad, m.weight.grad, m.bias.grad]
    for a, b in zip(res["fused"], res["conv1d"]):
        assert a.shape == b.shape
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)
