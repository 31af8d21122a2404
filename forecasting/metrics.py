"""Point-forecast metrics: MSE, MAE, RMSE, MAPE, sMAPE, MASE.

Functions take ``pred`` and ``true`` of the same shape ``[..., C]`` and average over every element, as
Time-Series-Library's ``utils/metrics.py`` does over the concatenated test windows. MAPE and sMAPE are in
percent (M4 convention). MASE divides absolute errors by a per-channel scale, the mean absolute seasonal
difference of the training split (Hyndman & Koehler, 2006). :class:`MetricAccumulator` sums over batches so
the dataset-level mean is exact regardless of batch sizes (no per-batch averaging bias).
"""
from __future__ import annotations

import torch

EPS = 1e-8
NAMES = ("mse", "mae", "rmse", "mape", "smape", "mase")


def _check(pred: torch.Tensor, true: torch.Tensor) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {tuple(pred.shape)} and {tuple(true.shape)}")


def mse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    _check(pred, true)
    return ((pred - true) ** 2).mean()


def mae(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    _check(pred, true)
    return (pred - true).abs().mean()


def rmse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Root mean squared error (square root of the overall MSE)."""
    return mse(pred, true).sqrt()


def mape(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error, ``100 * mean(|e| / max(|y|, eps))``."""
    _check(pred, true)
    return 100.0 * ((pred - true).abs() / true.abs().clamp_min(EPS)).mean()


def smape(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Symmetric MAPE, ``200 * mean(|e| / (|p| + |y|))`` (M4 definition)."""
    _check(pred, true)
    return 200.0 * ((pred - true).abs() / (pred.abs() + true.abs()).clamp_min(EPS)).mean()


def mase(pred: torch.Tensor, true: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean absolute scaled error; ``scale`` is per channel ``[C]`` (broadcast over the last dim)."""
    _check(pred, true)
    if scale.shape[-1] != pred.shape[-1] and scale.numel() != 1:
        raise ValueError(f"scale must have {pred.shape[-1]} channels, got shape {tuple(scale.shape)}")
    return ((pred - true).abs() / scale.to(pred).clamp_min(EPS)).mean()


def all_metrics(pred: torch.Tensor, true: torch.Tensor, scale: torch.Tensor | None = None) -> dict[str, float]:
    """Every metric in :data:`NAMES` (MASE only when ``scale`` is given)."""
    out = {"mse": mse(pred, true), "mae": mae(pred, true), "rmse": rmse(pred, true),
           "mape": mape(pred, true), "smape": smape(pred, true)}
    if scale is not None:
        out["mase"] = mase(pred, true, scale)
    return {k: float(v) for k, v in out.items()}


class MetricAccumulator:
    """Exact dataset-level metrics from per-batch sums.

    Args:
        scale: per-channel MASE scale ``[C]`` or None to skip MASE.
    """

    def __init__(self, scale: torch.Tensor | None = None) -> None:
        self.scale = scale
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        """Add a batch ``[B, H, C]``."""
        _check(pred, true)
        pred, true = pred.detach().double(), true.detach().double()
        err = pred - true
        terms = {"mse": err ** 2, "mae": err.abs(), "mape": 100.0 * err.abs() / true.abs().clamp_min(EPS),
                 "smape": 200.0 * err.abs() / (pred.abs() + true.abs()).clamp_min(EPS)}
        if self.scale is not None:
            terms["mase"] = err.abs() / self.scale.to(err).clamp_min(EPS)
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, torch.zeros((), dtype=torch.float64, device=v.device)) + v.sum()
        self.count += err.numel()

    def compute(self) -> dict[str, float]:
        """Means over every element added so far."""
        if self.count == 0:
            raise ValueError("no batches were added to the metric accumulator")
        out = {k: float(v) / self.count for k, v in self.sums.items()}
        out["rmse"] = out["mse"] ** 0.5
        return {k: out[k] for k in NAMES if k in out}

    def reduce(self, fn) -> None:
        """Replace the sums and count by ``fn(vector)`` (e.g. a cross-process sum under DDP)."""
        keys = sorted(self.sums)
        vec = torch.stack([self.sums[k] for k in keys] + [torch.tensor(float(self.count)).to(self.sums[keys[0]])])
        vec = fn(vec)
        self.sums = dict(zip(keys, vec[:-1]))
        self.count = round(float(vec[-1]))
