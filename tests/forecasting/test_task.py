import json

import lightning as L
import pandas as pd
import pytest
import torch
from seqlab.core.errors import ConfigError
from seqlab.forecasting import ForecastingDataModule, ForecastingTask
from seqlab.forecasting.models import TPGN, DLinear, NaiveForecaster


def _trainer(**kw):
    args = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
            "enable_progress_bar": False, "enable_model_summary": False}
    args.update(kw)
    return L.Trainer(**args)


def _dm(frame, **kw):
    args = {"frame": frame, "features": "M", "seq_len": 48, "pred_len": 24, "ratios": (0.6, 0.2, 0.2),
            "batch_size": 16}
    args.update(kw)
    return ForecastingDataModule(**args)


def test_fit_test_predict_end_to_end(frame, tmp_path):
    dm = _dm(frame)
    task = ForecastingTask(TPGN(48, 24, n_vars=2, d_model=4, period=24, n_time_features=4))
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(task, datamodule=dm)
    (res,) = _trainer().test(task, datamodule=dm, verbose=False)
    for key in ("mse", "mae", "rmse", "mape", "smape", "mase", "orig_mse", "orig_mae", "seasonal_naive_mse",
                "seasonal_naive_mae", "naive_mse"):
        assert f"test/{key}" in res, key
    # seasonal naive on the same windows, computed by hand
    x = torch.stack([dm.sets["test"][i]["x"] for i in range(len(dm.sets["test"]))])
    y = torch.stack([dm.sets["test"][i]["y"] for i in range(len(dm.sets["test"]))])
    sn = x[:, -24:, :]
    assert res["test/seasonal_naive_mse"] == pytest.approx(float(((sn - y) ** 2).mean()), rel=1e-4)

    written = task.save_artifacts(tmp_path, dm, "test")
    assert tmp_path / "forecast.png" in written  # the runtime prints these paths
    assert (tmp_path / "forecast.png").stat().st_size > 1000
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    assert metrics["mse"] == pytest.approx(res["test/mse"], rel=1e-5)

    preds = _trainer().predict(task, datamodule=dm)
    assert tmp_path / "predictions.csv" in task.write_predictions(preds, tmp_path, dm)
    csv = pd.read_csv(tmp_path / "predictions.csv", parse_dates=["date"])
    assert list(csv.columns) == ["date", "window", "step", "v0_forecast", "v0_actual", "OT_forecast", "OT_actual"]
    n_win = len(range(dm.border1s[2], dm.border2s[2] - 72 + 1, 24))
    assert len(csv) == n_win * 24 and csv["window"].nunique() == n_win
    first = dm.border1s[2] + 48  # actuals on the original scale at their timestamps
    assert csv["date"].iloc[0] == frame["date"].iloc[first]
    assert csv["OT_actual"].iloc[0] == pytest.approx(frame["OT"].iloc[first], rel=1e-5)
    assert (tmp_path / "predictions.png").stat().st_size > 1000


def test_predict_future_has_no_actuals(frame, tmp_path):
    dm = _dm(frame, features="S", predict_on="future")
    task = ForecastingTask(NaiveForecaster(48, 24))
    preds = _trainer().predict(task, datamodule=dm)
    task.write_predictions(preds, tmp_path, dm)
    csv = pd.read_csv(tmp_path / "predictions.csv", parse_dates=["date"])
    assert list(csv.columns) == ["date", "window", "step", "OT_forecast"]
    assert csv["date"].iloc[0] == frame["date"].iloc[-1] + pd.Timedelta(hours=1)
    assert csv["OT_forecast"].iloc[0] == pytest.approx(frame["OT"].iloc[-1], rel=1e-5)


def test_ms_scores_target_only(frame):
    dm = _dm(frame, features="MS", target="OT")
    task = ForecastingTask(DLinear(48, 24, n_vars=2), baselines=False)
    (res,) = _trainer(max_epochs=1, limit_train_batches=2).test(task, datamodule=dm, verbose=False)
    assert "test/mse" in res and "test/seasonal_naive_mse" not in res


def test_size_mismatch_is_a_config_error(frame):
    dm = _dm(frame)
    task = ForecastingTask(DLinear(48, 24, n_vars=5, individual=True))
    with pytest.raises(ConfigError, match="model.n_vars=5 but the data has n_vars=2"):
        _trainer(fast_dev_run=True).fit(task, datamodule=dm)


def test_schedules_losses_and_early_stopping():
    model = DLinear(48, 24)
    with pytest.raises(ConfigError, match="lr_schedule"):
        ForecastingTask(model, lr_schedule="type9")
    with pytest.raises(ConfigError, match="loss"):
        ForecastingTask(model, loss="l7")
    task = ForecastingTask(model, lr=0.1, lr_schedule="type1", patience=2)
    cfg = task.configure_optimizers()
    sched = cfg["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(4):
        lrs.append(cfg["optimizer"].param_groups[0]["lr"])
        sched.step()
    # TSLib / TPGN: adjust_learning_rate(epoch + 1) after each epoch -> epochs 1 and 2 both at lr0
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cfg4 = ForecastingTask(model, lr=1.0, lr_schedule="type4").configure_optimizers()
    lrs4 = []
    for _ in range(4):
        lrs4.append(cfg4["optimizer"].param_groups[0]["lr"])
        cfg4["lr_scheduler"]["scheduler"].step()
    assert lrs4 == pytest.approx([1.0, 1.0, 0.9, 0.81])
    # ``timellm``: the learning rates Time-LLM's run_main.py loop produces with --lradj type1, emulated here with
    # its own objects (an unstepped OneCycleLR sets the start lr; after epoch 1 args.learning_rate takes the
    # optimiser's lr; adjust_learning_rate(epoch + 1) then sets learning_rate * 0.5 ** (epoch - 1)).
    ref_opt = torch.optim.Adam(model.parameters(), lr=0.01)
    torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.01, steps_per_epoch=30, epochs=10, pct_start=0.2)
    base, ref = 0.01, []
    for epoch in range(5):
        ref.append(ref_opt.param_groups[0]["lr"])
        if epoch == 0:
            base = ref_opt.param_groups[0]["lr"]
        ref_opt.param_groups[0]["lr"] = base * 0.5 ** epoch  # adjust_learning_rate(epoch + 1): 0.5 ** ((e+1) - 1)
    cfg_t = ForecastingTask(model, lr=0.01, lr_schedule="timellm").configure_optimizers()
    lrs_t = []
    for _ in range(5):
        lrs_t.append(cfg_t["optimizer"].param_groups[0]["lr"])
        cfg_t["lr_scheduler"]["scheduler"].step()
    assert lrs_t == pytest.approx(ref) and lrs_t[0] == pytest.approx(4e-4)
    (es,) = task.configure_callbacks()
    assert es.monitor == "val/loss" and es.patience == 2
    assert ForecastingTask(model, patience=None).configure_callbacks() == []
    assert isinstance(ForecastingTask(model, lr_schedule="none").configure_optimizers(), torch.optim.Adam)
