"""SeqlabForecaster: the sktime estimator contract and forecasting behaviour."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sktime")

from seqlab.forecasting.sktime_adapter import SeqlabForecaster


def _sine(n: int = 120, cols: int = 1) -> pd.DataFrame:
    t = np.arange(n)
    data = {f"v{k}": np.sin(2 * np.pi * t / 12 + k) + 0.01 * t for k in range(cols)}
    return pd.DataFrame(data, index=pd.period_range("2000-01", periods=n, freq="M"))


def test_relative_and_absolute_fh_agree():
    y = _sine()
    f = SeqlabForecaster(model="dlinear", seq_len=24, pred_len=6, max_epochs=30, lr=1e-2).fit(y)
    rel = f.predict(fh=[1, 2, 3, 7, 13])  # 13 > pred_len: recursive roll-out
    from sktime.forecasting.base import ForecastingHorizon

    idx = pd.period_range("2010-01", periods=13, freq="M")
    ab = f.predict(fh=ForecastingHorizon(idx, is_relative=False))
    assert list(rel.index) == [idx[0], idx[1], idx[2], idx[6], idx[12]]
    np.testing.assert_allclose(ab.loc[rel.index].to_numpy(), rel.to_numpy())
    truth = np.sin(2 * np.pi * np.arange(120, 133) / 12) + 0.01 * np.arange(120, 133)
    assert np.sqrt(np.mean((ab["v0"].to_numpy() - truth) ** 2)) < 0.3  # learns the seasonal pattern
    assert f.losses_[-1] < f.losses_[0]


def test_series_in_series_out_and_multivariate():
    y = _sine()["v0"]
    out = SeqlabForecaster(model="arnet", seq_len=12, pred_len=3, max_epochs=2).fit(y).predict(fh=[1, 2])
    assert isinstance(out, pd.Series) and len(out) == 2
    ym = _sine(cols=3)
    outm = SeqlabForecaster(model="dlinear", seq_len=12, pred_len=3, max_epochs=2).fit(ym).predict(fh=[1, 2, 3, 4])
    assert outm.shape == (4, 3) and list(outm.columns) == ["v0", "v1", "v2"]


def test_update_moves_the_context():
    y = _sine(130)
    f = SeqlabForecaster(model="dlinear", seq_len=12, pred_len=3, max_epochs=2).fit(y.iloc[:120])
    before = f.predict(fh=[1])
    f.update(y.iloc[120:], update_params=False)
    after = f.predict(fh=[1])
    assert after.index[0] == y.index[-1] + 1 and before.index[0] == y.index[120]


def test_classic_ar_fits_in_closed_form():
    y = _sine()
    f = SeqlabForecaster(model="classic_ar", seq_len=12, pred_len=1, max_epochs=5).fit(y)
    assert f.losses_ == [] and bool(f.model_.fitted)
    assert f.predict(fh=[1, 2, 3]).shape == (3, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="seq_len"):
        SeqlabForecaster(seq_len=0)
    f = SeqlabForecaster(model="dlinear", seq_len=6, pred_len=2, max_epochs=1).fit(_sine(40))
    with pytest.raises((ValueError, NotImplementedError)):  # in-sample steps are refused
        f.predict(fh=[0, 1])


@pytest.mark.slow
def test_check_estimator():
    from sktime.utils.estimator_checks import check_estimator

    check_estimator(SeqlabForecaster, raise_exceptions=True)
