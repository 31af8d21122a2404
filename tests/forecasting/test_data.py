import numpy as np
import pandas as pd
import pytest
from seqlab.core.errors import DataError
from seqlab.forecasting.data import (
    ForecastingDataModule,
    ett_borders,
    load_dataset,
    ratio_borders,
    read_table,
    time_features,
)

from .conftest import make_frame


def test_ett_borders_match_tslib():
    b1, b2 = ett_borders(17420, seq_len=96)
    month = 30 * 24
    assert b2 == [12 * month, 16 * month, 20 * month]
    assert b1 == [0, 12 * month - 96, 16 * month - 96]
    _, b2m = ett_borders(69680, seq_len=96, steps_per_hour=4)
    assert b2m == [4 * 12 * month, 4 * 16 * month, 4 * 20 * month]
    with pytest.raises(DataError, match="split='ratio'"):
        ett_borders(1000, seq_len=96)


def test_ratio_borders():
    b1, b2 = ratio_borders(1000, 50, (0.6, 0.2, 0.2))
    assert b2 == [600, 800, 1000] and b1 == [0, 550, 750]
    b1, b2 = ratio_borders(17420, 96, (0.7, 0.1, 0.2))
    assert b2 == [12194, 12194 + 17420 - 12194 - 3484, 17420]
    with pytest.raises(DataError, match="summing to 1"):
        ratio_borders(100, 10, (0.5, 0.2, 0.2))


def test_etth1_protocol(etth1):
    dm = ForecastingDataModule(dataset="etth1", path=str(etth1), features="M", seq_len=96, pred_len=24)
    dm.setup()
    assert dm.split == "ett" and dm.n_vars == 7 and dm.columns[-1] == "OT" and dm.n_time_features == 4
    raw = pd.read_csv(etth1)
    train = raw[dm.columns].to_numpy()[: 12 * 30 * 24]
    np.testing.assert_allclose(dm.mean, train.mean(0))  # scaler fit on the training months only
    np.testing.assert_allclose(dm.std, train.std(0))
    test = dm.sets["test"]
    assert test.starts[0] == 16 * 30 * 24 - 96  # the first test input starts a lookback early
    first_target_row = test.starts[0] + 96
    assert first_target_row == 16 * 30 * 24
    assert len(test) == 4 * 30 * 24 - 24 + 1  # every test target row is forecast


def test_scaler_uses_train_only(frame):
    dm = ForecastingDataModule(frame=frame, features="M", seq_len=48, pred_len=24, ratios=(0.6, 0.2, 0.2))
    dm.setup()
    n_train = int(len(frame) * 0.6)
    np.testing.assert_allclose(dm.mean, frame[["v0", "OT"]].to_numpy()[:n_train].mean(0))
    assert not np.allclose(dm.mean, frame[["v0", "OT"]].to_numpy().mean(0))
    np.testing.assert_allclose(dm.scaled[:n_train].mean(0), 0, atol=1e-5)


def test_val_and_test_windows_start_a_lookback_earlier(frame):
    dm = ForecastingDataModule(frame=frame, features="S", seq_len=48, pred_len=24, ratios=(0.6, 0.2, 0.2))
    dm.setup()
    n_train, n_test = int(480 * 0.6), int(480 * 0.2)
    assert dm.sets["val"].starts[0] == n_train - 48
    assert dm.sets["test"].starts[0] == 480 - n_test - 48
    item = dm.sets["test"][0]
    np.testing.assert_allclose(item["y"][0].numpy(), dm.scaled[480 - n_test])  # first test target


def test_test_loader_keeps_last_partial_batch(frame):
    dm = ForecastingDataModule(frame=frame, seq_len=48, pred_len=24, ratios=(0.6, 0.2, 0.2), batch_size=7)
    dm.setup()
    n = len(dm.sets["test"])
    assert n % 7 != 0
    assert sum(len(b["x"]) for b in dm.test_dataloader()) == n
    assert sum(len(b["x"]) for b in dm.val_dataloader()) == len(dm.sets["val"])


def test_drop_last_train_drops_only_the_training_remainder(frame):
    # TPGN / WITRAN data_factory: drop_last=True for the (shuffled) training loader; we never drop at test.
    kw = {"frame": frame, "seq_len": 48, "pred_len": 24, "ratios": (0.6, 0.2, 0.2), "batch_size": 8}
    keep, drop = ForecastingDataModule(**kw), ForecastingDataModule(**kw, drop_last_train=True)
    keep.setup()
    drop.setup()
    n = len(drop.sets["train"])
    assert n % 8 != 0
    assert sum(len(b["x"]) for b in keep.train_dataloader()) == n
    sizes = [len(b["x"]) for b in drop.train_dataloader()]
    assert sizes == [8] * (n // 8)
    assert sum(len(b["x"]) for b in drop.test_dataloader()) == len(drop.sets["test"])
    assert sum(len(b["x"]) for b in drop.val_dataloader()) == len(drop.sets["val"])


def test_features_ms_moves_target_last_and_scores_it(frame):
    frame = frame[["date", "OT", "v0"]]
    dm = ForecastingDataModule(frame=frame, features="MS", target="OT", seq_len=48, pred_len=24)
    dm.setup()
    assert dm.columns == ["v0", "OT"] and dm.target_slice == slice(-1, None)
    dm_s = ForecastingDataModule(frame=frame, features="S", target="v0", seq_len=48, pred_len=24)
    dm_s.setup()
    assert dm_s.columns == ["v0"] and dm_s.n_vars == 1


def test_time_features_hourly():
    dates = pd.DatetimeIndex(["2016-07-01 00:00", "2016-07-01 23:00", "2016-12-31 12:00"])
    f = time_features(dates, "h")
    assert f.shape == (3, 4)
    np.testing.assert_allclose(f[0], [-0.5, 4 / 6 - 0.5, -0.5, 182 / 365 - 0.5], atol=1e-6)
    assert f[1, 0] == pytest.approx(0.5)
    assert time_features(dates, "d").shape == (3, 3) and time_features(dates, "t").shape == (3, 5)
    assert (np.abs(f) <= 0.5 + 1e-6).all()


def test_nan_is_a_data_error_naming_the_column(frame, tmp_path):
    frame.loc[37, "v0"] = np.nan
    path = tmp_path / "nan.csv"
    frame.to_csv(path, index=False)
    dm = ForecastingDataModule(path=str(path), seq_len=48, pred_len=24)
    with pytest.raises(DataError, match=r"'v0'.*row 37"):
        dm.setup()
    filled = read_table(path, fill_na="interpolate")
    assert filled["v0"].notna().all()
    assert filled.loc[37, "v0"] == pytest.approx((frame.loc[36, "v0"] + frame.loc[38, "v0"]) / 2)


def test_missing_file_and_unknown_dataset(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv"):
        ForecastingDataModule(path=str(missing))
    with pytest.raises(DataError, match="unknown dataset 'ettx9'"):
        ForecastingDataModule(dataset="ettx9")
    with pytest.raises(DataError, match="features"):
        ForecastingDataModule(dataset="co2", features="X")


def test_ett_download_failure_names_path_and_url(tmp_path, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"ETTh2\.csv.*raw\.githubusercontent\.com/zhouhaoyi/ETDataset"):
        load_dataset("etth2")


def test_bad_target_dates_and_short_series(frame, tmp_path):
    dm = ForecastingDataModule(frame=frame, target="nope", seq_len=48, pred_len=24)
    with pytest.raises(DataError, match="target column 'nope'"):
        dm.setup()
    shuffled = frame.iloc[[0, 2, 1] + list(range(3, len(frame)))]
    with pytest.raises(DataError, match="not strictly increasing at row 2"):
        ForecastingDataModule(frame=shuffled, seq_len=48, pred_len=24).setup()
    with pytest.raises(DataError, match="too short"):
        ForecastingDataModule(frame=make_frame(n=100), seq_len=48, pred_len=24).setup()
    text = frame.assign(v0="x")
    with pytest.raises(DataError, match="'v0' is not numeric"):
        read_table(text)


def test_readers_series_parquet_and_packaged(frame, tmp_path):
    s = frame.set_index("date")["OT"]
    out = read_table(s)
    assert list(out.columns) == ["date", "OT"] and len(out) == len(frame)
    pq = tmp_path / "x.parquet"
    frame.to_parquet(pq)
    pd.testing.assert_frame_equal(read_table(pq), read_table(frame))
    co2 = load_dataset("co2")
    assert len(co2) == 2284 and co2["co2"].notna().all()
    air = load_dataset("airline")
    assert len(air) == 144 and air["date"].iloc[0] == pd.Timestamp("1949-01-01")
    macro = load_dataset("macrodata")
    assert macro.shape == (203, 13)


def test_predict_future_windows(frame):
    dm = ForecastingDataModule(frame=frame, seq_len=48, pred_len=24, predict_on="future")
    dm.setup()
    batch = next(iter(dm.predict_dataloader()))
    assert batch["x"].shape == (1, 48, 1) and batch["y_mark"].shape == (1, 24, 4)
    _, fut = dm.window_dates(int(batch["start"][0]))
    assert fut[0] == frame["date"].iloc[-1] + pd.Timedelta(hours=1) and len(fut) == 24


def test_few_shot_cut_keeps_the_full_train_scaler(frame):
    """train_percent cuts the training windows only; the scaler is fit on the whole training split
    (Time-LLM's data_loader), so the 10% few-shot data is on the same scale as the full-data run."""
    full = ForecastingDataModule(frame=frame, seq_len=24, pred_len=12, split="ratio", features="S")
    few = ForecastingDataModule(frame=frame, seq_len=24, pred_len=12, split="ratio", features="S",
                                train_percent=10)
    full.setup("fit")
    few.setup("fit")
    np.testing.assert_allclose(few.mean, full.mean)
    np.testing.assert_allclose(few.std, full.std)
    assert len(few.sets["train"]) < len(full.sets["train"]) // 5
    assert len(few.sets["test"]) == len(full.sets["test"])
