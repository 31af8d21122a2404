"""``ForecastingTask``: the LightningModule that trains and scores any forecaster (composition).

Training follows the TSLib / TPGN experiment loop (``exp/exp_main.py``): Adam, MSE loss by default, the
learning rate adjusted once per epoch (``type1`` halves it every epoch; ``type4``, the TPGN repository's
default, multiplies it by 0.9), early stopping on the validation loss (patience 5 in TPGN's ``run.py``).
Test metrics are exact means over every test window (no dropped last batch), reported on the scaled data
(the papers' convention) and on the original scale (``test/orig_<metric>``), next to the naive and
seasonal-naive baselines computed on the same windows (``test/seasonal_naive_mse``, ...).
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from seqlab.core.errors import ConfigError
from seqlab.forecasting.losses import make_loss
from seqlab.forecasting.metrics import MetricAccumulator
from torch import nn

_SCHEDULES = ("type1", "type4", "timellm", "cosine", "none")
_ONECYCLE_DIV = 25.0  # torch OneCycleLR's default div_factor: its initial lr is max_lr / 25


class ForecastingTask(L.LightningModule):
    """Train / validate / test / predict a forecaster on a :class:`ForecastingDataModule`.

    Args:
        model: any ``nn.Module`` mapping ``x [B, L, C]`` (and optionally ``x_mark [B, L, F]``) to ``[B, H, C]``.
        loss: ``mse``, ``mae`` or ``huber``.
        lr: initial learning rate (Adam).
        weight_decay: Adam weight decay.
        lr_schedule: ``type1`` (x0.5 per epoch, TSLib), ``type4`` (x0.9 per epoch, TPGN repo default); as
            in both repositories the decay starts after the second epoch (lr0, lr0, lr0 * f, lr0 * f^2, ...),
            ``timellm`` (what Time-LLM's ``run_main.py`` actually runs with ``--lradj type1``: it builds a
            ``OneCycleLR(max_lr=lr)`` that is never stepped, so training starts at ``lr / 25``, and after the
            first epoch it copies that into ``args.learning_rate`` before ``type1`` halving: ``lr/25, lr/25,
            lr/50, lr/100, ...``), ``cosine`` (to 0 over ``max_epochs``) or ``none``.
        patience: early-stopping patience in epochs on ``val/loss``; None disables early stopping.
        huber_delta: delta of the Huber loss.
        baselines: also score naive and seasonal-naive forecasts on the test windows.

    Raises:
        ConfigError: unknown loss or schedule; at ``setup``, a model whose sizes disagree with the data.
    """

    monitor = "val/loss"
    monitor_mode = "min"

    def __init__(self, model: nn.Module, loss: str = "mse", lr: float = 1e-3, weight_decay: float = 0.0,
                 lr_schedule: str = "type1", patience: int | None = 5, huber_delta: float = 1.0,
                 baselines: bool = True) -> None:
        super().__init__()
        if lr_schedule not in _SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.criterion = make_loss(loss, huber_delta)
        params = inspect.signature(model.forward).parameters
        self._takes_marks = "x_mark" in params or len(params) >= 2
        self.test_results: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ core
    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, x_mark) if self._takes_marks else self.model(x)

    def _dm(self):
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            raise ConfigError("ForecastingTask needs a ForecastingDataModule passed to the Trainer as datamodule=")
        return dm

    def setup(self, stage: str) -> None:
        dm = self._dm()
        dm.setup(stage)
        checks = {"seq_len": dm.seq_len, "pred_len": dm.pred_len, "n_vars": dm.n_vars,
                  "n_time_features": dm.n_time_features}
        for name, want in checks.items():
            have = getattr(self.model, name, None)
            if isinstance(have, int) and have != want and not (name == "n_time_features" and have == 0):
                raise ConfigError(f"model.{name}={have} but the data has {name}={want} "
                                  f"(features={dm.features!r}); set model.{name}: {want}")

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        sl = self._dm().target_slice
        pred = self(batch["x"], batch["x_mark"])
        return pred[..., sl], batch["y"][..., sl]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pred, true = self._step(batch)
        loss = self.criterion(pred, true)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(pred))
        # Models with a training penalty (AR-Net's sparsity regulariser) expose regularization_loss(epoch=...).
        reg = getattr(self.model, "regularization_loss", None)
        if callable(reg):
            penalty = reg(epoch=self.current_epoch)
            self.log("train/reg", penalty, batch_size=len(pred))
            loss = loss + penalty
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pred, true = self._step(batch)
        n = len(pred)
        self.log("val/loss", self.criterion(pred, true), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/mse", ((pred - true) ** 2).mean(), batch_size=n, sync_dist=True)
        self.log("val/mae", (pred - true).abs().mean(), batch_size=n, sync_dist=True)

    # ------------------------------------------------------------------------------------------ test
    def on_test_epoch_start(self) -> None:
        dm = self._dm()
        sl = dm.target_slice
        self._acc = {"": MetricAccumulator(dm.mase_scale(True, sl)),
                     "orig_": MetricAccumulator(dm.mase_scale(False, sl))}
        if self.hparams.baselines:
            m = dm.season_length
            if m <= dm.seq_len:
                self._acc["seasonal_naive_"] = MetricAccumulator(dm.mase_scale(True, sl))
            self._acc["naive_"] = MetricAccumulator(dm.mase_scale(True, sl))

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        dm = self._dm()
        sl = dm.target_slice
        pred, true = self._step(batch)
        self._acc[""].update(pred, true)
        self._acc["orig_"].update(dm.inverse_transform(pred, sl), dm.inverse_transform(true, sl))
        x = batch["x"][..., sl]
        if "seasonal_naive_" in self._acc:
            self._acc["seasonal_naive_"].update(seasonal_naive_forecast(x, dm.pred_len, dm.season_length), true)
        if "naive_" in self._acc:
            self._acc["naive_"].update(x[:, -1:, :].expand_as(true), true)

    def on_test_epoch_end(self) -> None:
        results: dict[str, float] = {}
        for prefix, acc in self._acc.items():
            if self.trainer.world_size > 1:
                acc.reduce(lambda v: self.trainer.strategy.reduce(v, reduce_op="sum"))
            for name, value in acc.compute().items():
                results[f"{prefix}{name}"] = value
        for key, value in results.items():
            self.log(f"test/{key}", value, rank_zero_only=True)
        self.test_results = results

    # ------------------------------------------------------------------------------------------ predict
    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        dm = self._dm()
        sl = dm.target_slice
        pred, true = self._step(batch)
        return {"start": batch["start"].cpu(), "pred": dm.inverse_transform(pred, sl).cpu(),
                "true": dm.inverse_transform(true, sl).cpu(),
                "history": dm.inverse_transform(batch["x"][..., sl], sl).cpu()}

    # ------------------------------------------------------------------------------------------ optim
    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        kind = self.hparams.lr_schedule
        if kind == "none":
            return opt
        if kind == "cosine":
            t_max = max(1, int(self.trainer.max_epochs or 1)) if self._trainer is not None else 1
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
        else:
            # TSLib / TPGN call ``adjust_learning_rate(optimizer, epoch + 1, args)`` at the END of every epoch
            # (``exp/exp_main.py``), with ``lr = lr0 * factor ** (epoch - 1)``: the first two epochs both train
            # at lr0 and epoch e >= 1 (0-based) at ``lr0 * factor ** (e - 1)``.
            factor = 0.9 if kind == "type4" else 0.5
            scale = 1.0 / _ONECYCLE_DIV if kind == "timellm" else 1.0
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: scale * factor ** max(0, epoch - 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def configure_callbacks(self) -> list:
        if self.hparams.patience is None:
            return []
        return [L.pytorch.callbacks.EarlyStopping(monitor=self.monitor, mode=self.monitor_mode,
                                                  patience=int(self.hparams.patience))]

    # ------------------------------------------------------------------------------------------ outputs
    def save_artifacts(self, run_dir: Path, datamodule, stage: str) -> list[Path]:
        """Write ``test_metrics.json`` and ``forecast.png`` (history, forecast, actuals of the last test window).

        Args:
            run_dir: the run's folder.
            datamodule: the fitted :class:`ForecastingDataModule`.
            stage: ``test`` (or ``fit``/``validate``; the test window is plotted either way).
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.test_results:
            (run_dir / "test_metrics.json").write_text(json.dumps(self.test_results, indent=2, sort_keys=True))
        datamodule.setup("test")
        ds = datamodule.sets["test"]
        item = ds[len(ds) - 1]
        sl = datamodule.target_slice
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            x = item["x"][None].to(self.device)
            pred = self(x, item["x_mark"][None].to(self.device))[0, :, sl].cpu()
        self.model.train(was_training)
        hist_d, fut_d = datamodule.window_dates(int(item["start"]))
        to_orig = lambda t: datamodule.inverse_transform(t, sl).numpy()
        baseline = None
        if datamodule.season_length <= datamodule.seq_len:
            baseline = to_orig(seasonal_naive_forecast(item["x"][None, :, sl], datamodule.pred_len,
                                                       datamodule.season_length)[0])
        plot_forecast(run_dir / "forecast.png", hist_d, to_orig(item["x"][:, sl]), fut_d, to_orig(pred),
                      to_orig(item["y"][:, sl]), datamodule.columns[sl], baseline=baseline,
                      title=f"{type(self.model).__name__}: last test window")
        return [p for p in (run_dir / "forecast.png", run_dir / "test_metrics.json") if p.is_file()]

    def write_predictions(self, predictions: list, run_dir: Path, datamodule) -> list[Path]:
        """Write ``predictions.csv`` (timestamps, original scale) and ``predictions.png``.

        The CSV has one row per forecast step: ``date, window, step`` then ``<var>_forecast`` and, where the
        actual value is known, ``<var>_actual`` for every scored variable.
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        names = datamodule.columns[datamodule.target_slice]
        rows, windows = [], []
        for batch in predictions:
            for s, p, t, h in zip(batch["start"], batch["pred"], batch["true"], batch["history"]):
                hist_d, fut_d = datamodule.window_dates(int(s))
                w = len(windows)
                windows.append((hist_d, h.numpy(), fut_d, p.numpy(), t.numpy()))
                for k, d in enumerate(fut_d):
                    row = {"date": d, "window": w, "step": k + 1}
                    for j, name in enumerate(names):
                        row[f"{name}_forecast"] = float(p[k, j])
                        if math.isfinite(float(t[k, j])):
                            row[f"{name}_actual"] = float(t[k, j])
                    rows.append(row)
        pd.DataFrame(rows).to_csv(run_dir / "predictions.csv", index=False)
        if windows:
            first_hist_d, first_hist, _, _, _ = windows[0]
            fut_d = pd.DatetimeIndex(np.concatenate([w[2].values for w in windows]))
            plot_forecast(run_dir / "predictions.png", first_hist_d, first_hist, fut_d,
                          np.concatenate([w[3] for w in windows]), np.concatenate([w[4] for w in windows]),
                          names, title=f"{type(self.model).__name__}: {len(windows)} forecast window(s)")
        return [p for p in (run_dir / "predictions.csv", run_dir / "predictions.png") if p.is_file()]


def seasonal_naive_forecast(x: torch.Tensor, pred_len: int, season_length: int) -> torch.Tensor:
    """Seasonal-naive forecast of ``x [B, L, C]``: ``y[h] = x[L - m + (h mod m)]``, shape ``[B, H, C]``."""
    idx = x.shape[1] - season_length + torch.arange(pred_len, device=x.device) % season_length
    return x[:, idx, :]


def plot_forecast(path: Path, hist_dates, history: np.ndarray, fut_dates, forecast: np.ndarray,
                  actual: np.ndarray | None, names: list[str], baseline: np.ndarray | None = None,
                  title: str = "") -> None:
    """Plot history, forecast and actuals (and an optional baseline) per variable into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(names), 4)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.8 * n), squeeze=False)
    for j in range(n):
        ax = axes[j, 0]
        ax.plot(hist_dates, history[:, j], color="0.4", lw=1, label="history")
        if actual is not None and np.isfinite(actual[:, j]).any():
            ax.plot(fut_dates, actual[:, j], color="black", lw=1, label="actual")
        ax.plot(fut_dates, forecast[:, j], color="tab:red", lw=1.3, label="forecast")
        if baseline is not None:
            ax.plot(fut_dates, baseline[:, j], color="tab:blue", lw=0.8, ls="--", label="seasonal naive")
        ax.set_ylabel(names[j])
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
