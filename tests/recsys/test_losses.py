import math

import pytest
import torch
import torch.nn.functional as F
from seqlab.recsys.losses import full_ce_loss, gbce_beta, sampled_bce_loss


def test_bce_matches_kang205_formula():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(3, 5, generator=g), torch.randn(3, 5, 1, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    ref = (-(torch.sigmoid(pos) + 1e-24).log() - (1 - torch.sigmoid(neg[..., 0]) + 1e-24).log())
    ref = (ref * mask).sum() / mask.sum()
    torch.testing.assert_close(sampled_bce_loss(pos, neg, mask), ref)


def test_gbce_beta_calibration():
    assert gbce_beta(1001, 10, 0.0) == pytest.approx(1.0)
    assert gbce_beta(1001, 10, 1.0) == pytest.approx(10 / 1000)
    alpha, t = 256 / 3415, 0.75
    assert gbce_beta(3416, 256, t) == pytest.approx(alpha * (t * (1 - 1 / alpha) + 1 / alpha))
    with pytest.raises(ValueError):
        gbce_beta(100, 1, 1.5)


def test_gbce_weights_positive_term():
    pos, neg, mask = torch.zeros(1, 1), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool)
    assert float(sampled_bce_loss(pos, neg, mask, beta=0.5)) == pytest.approx(2.5 * math.log(2))


def test_full_ce_ignores_padding():
    logits = torch.randn(4, 6)
    targets = torch.tensor([1, 5, 0, 2])
    ref = F.cross_entropy(logits[[0, 1, 3], 1:], targets[[0, 1, 3]] - 1)
    torch.testing.assert_close(full_ce_loss(logits, targets), ref)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        sampled_bce_loss(torch.zeros(2, 3), torch.zeros(2, 4, 1), torch.ones(2, 3, dtype=torch.bool))
