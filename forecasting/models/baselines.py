"""Baselines: naive (last value), seasonal naive, and DLinear.

DLinear follows Zeng et al., "Are Transformers Effective for Time Series Forecasting?" (AAAI 2023) and
cure-lab/LTSF-Linear ``models/DLinear.py``: a moving-average decomposition (kernel 25, replicate padding of
``(k-1)//2`` on both ends) into trend and remainder, one linear map ``seq_len -> pred_len`` per component
(shared across channels, or per channel when ``individual``), outputs summed.

Every forecaster here maps ``x [B, L, C]`` (and optional calendar features, ignored) to ``[B, H, C]``.
"""
from __future__ import annotations

import torch
from torch import nn


def _check_input(x: torch.Tensor, seq_len: int, n_vars: int | None = None) -> None:
    if x.ndim != 3 or x.shape[1] != seq_len or (n_vars is not None and x.shape[2] != n_vars):
        want = f"[B, {seq_len}, {n_vars if n_vars is not None else 'C'}]"
        raise ValueError(f"x must have shape {want}, got {tuple(x.shape)}")


class NaiveForecaster(nn.Module):
    """Repeat the last observed value over the horizon (random-walk forecast)."""

    def __init__(self, seq_len: int, pred_len: int) -> None:
        super().__init__()
        self.seq_len, self.pred_len = seq_len, pred_len

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(x, self.seq_len)
        return x[:, -1:, :].expand(-1, self.pred_len, -1).clone()


class SeasonalNaiveForecaster(nn.Module):
    """Repeat the last full season: ``y[L + h] = x[L - m + (h mod m)]``.

    Raises:
        ValueError: if ``season_length`` is not in ``[1, seq_len]``.
    """

    def __init__(self, seq_len: int, pred_len: int, season_length: int) -> None:
        super().__init__()
        if not 1 <= season_length <= seq_len:
            raise ValueError(f"season_length must be in [1, seq_len={seq_len}], got {season_length}")
        self.seq_len, self.pred_len, self.season_length = seq_len, pred_len, season_length
        self.register_buffer("index", seq_len - season_length + torch.arange(pred_len) % season_length,
                             persistent=False)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(x, self.seq_len)
        return x[:, self.index, :]


class MovingAvg(nn.Module):
    """Moving average over time with replicate padding (LTSF-Linear ``moving_avg``), on ``[B, L, C]``."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.avg = nn.AvgPool1d(kernel_size=kernel_size, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel_size - 1) // 2
        front = x[:, :1, :].repeat(1, pad, 1)
        end = x[:, -1:, :].repeat(1, pad, 1)
        x = torch.cat([front, x, end], dim=1)
        return self.avg(x.permute(0, 2, 1)).permute(0, 2, 1)


class DLinear(nn.Module):
    """DLinear: series decomposition + linear heads.

    Args:
        seq_len: lookback L.
        pred_len: horizon H.
        n_vars: channels C (needed when ``individual``).
        individual: one pair of linear maps per channel.
        kernel_size: moving-average kernel of the trend (paper: 25; odd keeps the length).
    """

    def __init__(self, seq_len: int, pred_len: int, n_vars: int = 1, individual: bool = False,
                 kernel_size: int = 25) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the length, got {kernel_size}")
        self.seq_len, self.pred_len, self.n_vars, self.individual = seq_len, pred_len, n_vars, individual
        self.decomp = MovingAvg(kernel_size)
        n = n_vars if individual else 1
        self.linear_seasonal = nn.ModuleList(nn.Linear(seq_len, pred_len) for _ in range(n))
        self.linear_trend = nn.ModuleList(nn.Linear(seq_len, pred_len) for _ in range(n))

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(x, self.seq_len, self.n_vars if self.individual else None)
        trend = self.decomp(x)
        seasonal = (x - trend).permute(0, 2, 1)  # [B, C, L]
        trend = trend.permute(0, 2, 1)
        if self.individual:
            out = torch.stack([self.linear_seasonal[i](seasonal[:, i]) + self.linear_trend[i](trend[:, i])
                               for i in range(self.n_vars)], dim=1)
        else:
            out = self.linear_seasonal[0](seasonal) + self.linear_trend[0](trend)
        return out.permute(0, 2, 1)  # [B, H, C]
