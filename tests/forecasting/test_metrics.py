import math

import pytest
import torch
from seqlab.forecasting.metrics import MetricAccumulator, all_metrics, mae, mape, mase, mse, rmse, smape


def test_metrics_match_hand_computation():
    pred = torch.tensor([[[1.0], [2.0]], [[3.0], [5.0]]])  # [B=2, H=2, C=1]
    true = torch.tensor([[[2.0], [2.0]], [[1.0], [4.0]]])
    # errors: -1, 0, 2, 1
    assert float(mse(pred, true)) == pytest.approx((1 + 0 + 4 + 1) / 4)
    assert float(mae(pred, true)) == pytest.approx((1 + 0 + 2 + 1) / 4)
    assert float(rmse(pred, true)) == pytest.approx(math.sqrt(6 / 4))
    assert float(mape(pred, true)) == pytest.approx(100 * (1 / 2 + 0 + 2 / 1 + 1 / 4) / 4)
    assert float(smape(pred, true)) == pytest.approx(200 * (1 / 3 + 0 + 2 / 4 + 1 / 9) / 4)
    assert float(mase(pred, true, torch.tensor([2.0]))) == pytest.approx((1 + 0 + 2 + 1) / 4 / 2)


def test_mase_scale_is_per_channel():
    pred = torch.zeros(1, 1, 2)
    true = torch.tensor([[[1.0, 1.0]]])
    assert float(mase(pred, true, torch.tensor([1.0, 4.0]))) == pytest.approx((1 + 0.25) / 2)
    with pytest.raises(ValueError, match="channels"):
        mase(pred, true, torch.ones(3))


def test_accumulator_is_exact_over_uneven_batches():
    g = torch.Generator().manual_seed(0)
    pred, true = torch.randn(10, 4, 3, generator=g), torch.randn(10, 4, 3, generator=g)
    scale = torch.tensor([0.5, 1.0, 2.0])
    acc = MetricAccumulator(scale)
    for sl in (slice(0, 3), slice(3, 4), slice(4, 10)):
        acc.update(pred[sl], true[sl])
    whole = all_metrics(pred, true, scale)
    for k, v in acc.compute().items():
        assert v == pytest.approx(whole[k], rel=1e-5), k


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no batches"):
        MetricAccumulator().compute()
