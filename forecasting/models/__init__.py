"""Forecasting models: plain ``nn.Module`` forecasters and their registered builders.

Every forecaster maps ``x [B, L, C]`` and optional calendar features ``x_mark [B, L, F]`` to ``[B, H, C]``:
``model(x, x_mark)``. Builders are registered as ``forecasting.<name>`` in ``seqlab.core.registry`` and are
the ``_target_`` of config ``model`` sections (e.g. ``seqlab.forecasting.models.tpgn``).
"""
from __future__ import annotations

from typing import Any

from seqlab.core.registry import create_model, list_models, register_model
from seqlab.forecasting.models.arnet import ARNet, ClassicAR
from seqlab.forecasting.models.baselines import DLinear, NaiveForecaster, SeasonalNaiveForecaster
from seqlab.forecasting.models.block_forecaster import BlockForecaster
from seqlab.forecasting.models.timellm import TimeLLM
from seqlab.forecasting.models.tpgn import TPGN
from torch import nn


@register_model("forecasting.tpgn")
def tpgn(seq_len: int, pred_len: int, n_vars: int = 1, d_model: int = 32, period: int = 24,
         n_time_features: int = 4, norm: bool = False, short_term: bool = True) -> TPGN:
    """Temporal PGN (Jia et al., NeurIPS 2024); see :class:`~seqlab.forecasting.models.tpgn.TPGN`."""
    return TPGN(seq_len, pred_len, n_vars, d_model, period, n_time_features, norm, short_term)


@register_model("forecasting.dlinear")
def dlinear(seq_len: int, pred_len: int, n_vars: int = 1, individual: bool = False,
            kernel_size: int = 25) -> DLinear:
    """DLinear (Zeng et al., AAAI 2023); see :class:`~seqlab.forecasting.models.baselines.DLinear`."""
    return DLinear(seq_len, pred_len, n_vars, individual, kernel_size)


@register_model("forecasting.naive")
def naive(seq_len: int, pred_len: int, n_vars: int = 1) -> NaiveForecaster:
    """Last-value forecast (``n_vars`` is accepted for a uniform signature)."""
    return NaiveForecaster(seq_len, pred_len)


@register_model("forecasting.seasonal_naive")
def seasonal_naive(seq_len: int, pred_len: int, season_length: int, n_vars: int = 1) -> SeasonalNaiveForecaster:
    """Repeat the last season of length ``season_length``."""
    return SeasonalNaiveForecaster(seq_len, pred_len, season_length)


@register_model("forecasting.block_forecaster")
def block_forecaster(seq_len: int, pred_len: int, block: str = "lstm", n_vars: int = 1, d_model: int = 64,
                     n_layers: int = 2, patch_len: int = 16, stride: int = 8, mlp_ratio: int = 2,
                     dropout: float = 0.1, revin: bool = True,
                     block_kwargs: dict[str, Any] | None = None) -> BlockForecaster:
    """Any core block as a channel-independent patch forecaster; see :class:`BlockForecaster`."""
    return BlockForecaster(seq_len, pred_len, block, n_vars, d_model, n_layers, patch_len, stride, mlp_ratio,
                           dropout, revin, dict(block_kwargs) if block_kwargs is not None else None)


def create_forecaster(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered forecaster ``name`` (with or without the ``forecasting.`` prefix).

    Raises:
        seqlab.core.errors.ConfigError: if no such forecaster is registered.
    """
    key = name if name.startswith("forecasting.") else f"forecasting.{name}"
    return create_model(key, **kwargs)


def list_forecasters() -> list[str]:
    """Names of the registered forecasters, without the ``forecasting.`` prefix."""
    return [n.split(".", 1)[1] for n in list_models("forecasting.*")]


__all__ = [
    "TPGN",
    "ARNet",
    "BlockForecaster",
    "ClassicAR",
    "DLinear",
    "NaiveForecaster",
    "SeasonalNaiveForecaster",
    "TimeLLM",
    "block_forecaster",
    "create_forecaster",
    "dlinear",
    "list_forecasters",
    "naive",
    "seasonal_naive",
    "tpgn",
]
