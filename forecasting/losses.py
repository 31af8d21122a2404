"""Training losses of the forecasting task."""
from __future__ import annotations

from seqlab.core.errors import ConfigError
from torch import nn

LOSSES = ("mse", "mae", "huber")


def make_loss(name: str, huber_delta: float = 1.0) -> nn.Module:
    """``mse`` (the papers' default), ``mae`` (L1) or ``huber`` with ``huber_delta``.

    Raises:
        ConfigError: for any other name.
    """
    if name == "mse":
        return nn.MSELoss()
    if name == "mae":
        return nn.L1Loss()
    if name == "huber":
        return nn.HuberLoss(delta=huber_delta)
    raise ConfigError(f"loss must be one of {LOSSES}, got {name!r}")
