"""``SeqlabForecaster``: any registered seqlab forecaster as an sktime ``BaseForecaster``.

The adapter standardises each column with the training mean and standard deviation, cuts the series into
sliding windows of ``seq_len`` inputs and ``pred_len`` targets, and trains the seqlab model with a small
plain-PyTorch loop (Adam, MSE, plus ``model.regularization_loss(epoch)`` when the model has one, e.g.
AR-Net). Forecasts for any horizon are produced in chunks of ``pred_len`` steps, each chunk fed back as
input for the next (recursive strategy), so ``fh`` is not needed in ``fit``.

A series shorter than ``seq_len + pred_len`` is left-padded with its first value so that at least one
window exists (sktime's estimator checks use very short series); the padding is visible through
``n_padded_``.

``sktime`` is an optional dependency: importing :mod:`seqlab.forecasting` does not import it; the class is
built on first access of ``seqlab.forecasting.SeqlabForecaster`` (or of this module).

Example:
    >>> from sktime.datasets import load_airline
    >>> from seqlab.forecasting import SeqlabForecaster
    >>> f = SeqlabForecaster(model="dlinear", seq_len=24, pred_len=12, max_epochs=20)
    >>> y_pred = f.fit(load_airline()).predict(fh=list(range(1, 25)))
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from seqlab.core.registry import _MODELS, create_model
from sktime.forecasting.base import BaseForecaster
from torch import nn


def _build(name: str, seq_len: int, pred_len: int, n_vars: int, kwargs: dict[str, Any]) -> nn.Module:
    import seqlab.forecasting.models  # noqa: F401  (registers the forecasters)

    key = name if name.startswith("forecasting.") else f"forecasting.{name}"
    kw = dict(kwargs)
    builder = _MODELS.get(key)  # its signature decides whether calendar features must be switched off
    if builder is not None:
        params = inspect.signature(builder).parameters
        if "n_time_features" in params and "n_time_features" not in kw:
            kw["n_time_features"] = 0  # the adapter feeds no calendar features
    return create_model(key, seq_len=seq_len, pred_len=pred_len, n_vars=n_vars, **kw)


class SeqlabForecaster(BaseForecaster):
    """Train a seqlab forecaster (``tpgn``, ``dlinear``, ``arnet``, ``timellm``, ...) through sktime's API.

    Args:
        model: registered forecaster name (see ``seqlab.forecasting.list_forecasters()``).
        seq_len: lookback window ``L``.
        pred_len: steps the network predicts at once; longer horizons are rolled out recursively.
        model_kwargs: extra keyword arguments of the forecaster's builder.
        max_epochs: training epochs.
        batch_size: windows per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        scale: standardise each column with the training statistics.
        random_state: seed of the model initialisation and the batch order (None: not seeded).
        device: torch device for training and prediction.

    Fitted attributes: ``model_`` (the trained ``nn.Module``), ``losses_`` (mean loss per epoch), ``mean_``,
    ``std_`` (scaling statistics), ``n_padded_`` (left-padding added to the training series).

    Example:
        >>> from sktime.datasets import load_airline
        >>> from seqlab.forecasting.sktime_adapter import SeqlabForecaster
        >>> y = load_airline()
        >>> forecaster = SeqlabForecaster(model="dlinear", seq_len=24, pred_len=12, max_epochs=3)
        >>> y_pred = forecaster.fit(y).predict(fh=[1, 2, 3])
        >>> len(y_pred)
        3
    """

    _tags: ClassVar[dict[str, Any]] = {
        "authors": ["seqlab"],
        "maintainers": ["seqlab"],
        "python_dependencies": ["torch"],
        "y_inner_mtype": "pd.DataFrame",
        "X_inner_mtype": "pd.DataFrame",
        "scitype:y": "both",
        "capability:multivariate": True,
        "capability:exogenous": False,
        "capability:insample": False,
        "capability:pred_int": False,
        "capability:missing_values": False,
        "capability:update": True,
        "capability:random_state": True,
        "requires-fh-in-fit": False,
        "X-y-must-have-same-index": True,
        "enforce_index_type": None,
    }

    def __init__(self, model: str = "dlinear", seq_len: int = 24, pred_len: int = 12,
                 model_kwargs: dict | None = None, max_epochs: int = 20, batch_size: int = 32, lr: float = 1e-3,
                 weight_decay: float = 0.0, scale: bool = True, random_state: int | None = 0,
                 device: str = "cpu") -> None:
        self.model = model
        self.seq_len = seq_len
        self.pred_len = pred_len
        self.model_kwargs = model_kwargs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.scale = scale
        self.random_state = random_state
        self.device = device
        super().__init__()
        if int(seq_len) < 1 or int(pred_len) < 1:
            raise ValueError(f"seq_len and pred_len must be >= 1, got {seq_len} and {pred_len}")
        if int(max_epochs) < 0 or int(batch_size) < 1:
            raise ValueError(f"max_epochs must be >= 0 and batch_size >= 1, got {max_epochs} and {batch_size}")

    # ------------------------------------------------------------------------------------------ helpers
    def _scaled(self, y: pd.DataFrame) -> np.ndarray:
        return (y.to_numpy(dtype=np.float64) - self.mean_) / self.std_

    def _pad(self, values: np.ndarray, length: int) -> np.ndarray:
        if values.shape[0] >= length:
            return values
        return np.concatenate([np.repeat(values[:1], length - values.shape[0], axis=0), values], axis=0)

    def _train(self, y: pd.DataFrame) -> None:
        values = y.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("SeqlabForecaster: y holds NaN or infinite values")
        if self.scale:
            self.mean_ = values.mean(axis=0)
            std = values.std(axis=0)
            self.std_ = np.where(std > 1e-12, std, 1.0)
        else:
            self.mean_, self.std_ = np.zeros(values.shape[1]), np.ones(values.shape[1])
        span = self.seq_len + self.pred_len
        scaled = self._scaled(y)
        self.n_padded_ = max(0, span - scaled.shape[0])
        data = torch.as_tensor(self._pad(scaled, span), dtype=torch.float32)
        windows = data.unfold(0, span, 1).permute(0, 2, 1)  # [W, L+H, C]
        x, target = windows[:, : self.seq_len], windows[:, self.seq_len:]

        with torch.random.fork_rng(devices=[]):
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            net = _build(self.model, self.seq_len, self.pred_len, data.shape[1], self.model_kwargs or {})
            gen = torch.Generator()
            gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        device = torch.device(self.device)
        net.to(device)
        params = [p for p in net.parameters() if p.requires_grad]
        self.losses_: list[float] = []
        if params and self.max_epochs > 0:
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
            reg = getattr(net, "regularization_loss", None)
            net.train()
            for epoch in range(int(self.max_epochs)):
                perm = torch.randperm(x.shape[0], generator=gen)
                total = 0.0
                for i in range(0, x.shape[0], self.batch_size):
                    idx = perm[i: i + self.batch_size]
                    xb, yb = x[idx].to(device), target[idx].to(device)
                    loss = nn.functional.mse_loss(net(xb), yb)
                    if callable(reg):
                        loss = loss + reg(epoch=epoch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                self.losses_.append(total / x.shape[0])
        elif hasattr(net, "fit") and callable(net.fit):  # closed-form models, e.g. classic_ar
            net.fit(data)
        net.eval()
        self.model_ = net

    # ------------------------------------------------------------------------------------------ sktime API
    def _fit(self, y: pd.DataFrame, X: pd.DataFrame | None = None, fh=None) -> SeqlabForecaster:
        self._train(y)
        self._context = y.copy()  # history that predictions start from (extended by update)
        return self

    def _update(self, y: pd.DataFrame, X: pd.DataFrame | None = None, update_params: bool = True):
        context = y if self._context is None else pd.concat([self._context, y])
        self._context = context[~context.index.duplicated(keep="last")].sort_index()
        if update_params:
            self._train(self._context)
        return self

    def _predict(self, fh, X: pd.DataFrame | None = None) -> pd.DataFrame:
        steps = fh.to_relative(self.cutoff).to_numpy().astype(int)
        if (steps < 1).any():
            raise ValueError(f"SeqlabForecaster forecasts only future steps; got relative fh {steps.tolist()}")
        horizon = int(steps.max())
        context = torch.as_tensor(self._pad(self._scaled(self._context), self.seq_len)[-self.seq_len:],
                                  dtype=torch.float32, device=torch.device(self.device))[None]  # [1, L, C]
        chunks = []
        with torch.no_grad():
            for _ in range(-(-horizon // self.pred_len)):
                out = self.model_(context)  # [1, H, C]
                chunks.append(out)
                context = torch.cat([context, out], dim=1)[:, -self.seq_len:]
        path = torch.cat(chunks, dim=1)[0].cpu().double().numpy()  # [>=horizon, C]
        values = path[steps - 1] * self.std_ + self.mean_
        index = fh.to_absolute_index(self.cutoff)
        return pd.DataFrame(values, index=index, columns=self._context.columns)

    # ------------------------------------------------------------------------------------------ testing
    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        """Tiny, fast configurations for ``sktime.utils.estimator_checks.check_estimator``."""
        return [
            {"model": "dlinear", "seq_len": 6, "pred_len": 3, "max_epochs": 2, "batch_size": 16,
             "model_kwargs": {"kernel_size": 3}},
            {"model": "arnet", "seq_len": 5, "pred_len": 2, "max_epochs": 2, "batch_size": 16,
             "model_kwargs": {"sparsity": 0.5, "lambda_delay_epochs": 1}},
            {"model": "tpgn", "seq_len": 8, "pred_len": 4, "max_epochs": 1, "batch_size": 16,
             "model_kwargs": {"period": 4, "d_model": 4}},
        ]
