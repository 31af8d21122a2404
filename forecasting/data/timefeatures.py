"""Calendar time features, as in Time-Series-Library ``utils/timefeatures.py`` (``embed='timeF'``).

Each feature is scaled to [-0.5, 0.5]. The features used for a frequency follow TSLib's
``time_features_from_frequency_str``: hourly data gets [hour-of-day, day-of-week, day-of-month, day-of-year]
(4 features, TPGN's ``dim_time`` for ``freq='h'``), minutely data adds minute-of-hour first (5), daily data
gets the last three (3), weekly [day-of-month, week-of-year], monthly and quarterly [month-of-year], yearly none.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_FEATURES = {
    "second": lambda d: d.second / 59.0 - 0.5,
    "minute": lambda d: d.minute / 59.0 - 0.5,
    "hour": lambda d: d.hour / 23.0 - 0.5,
    "dayofweek": lambda d: d.dayofweek / 6.0 - 0.5,
    "dayofmonth": lambda d: (d.day - 1) / 30.0 - 0.5,
    "dayofyear": lambda d: (d.dayofyear - 1) / 365.0 - 0.5,
    "month": lambda d: (d.month - 1) / 11.0 - 0.5,
    "weekofyear": lambda d: (np.asarray(d.isocalendar().week, dtype=float) - 1) / 52.0 - 0.5,
}

_BY_FREQ = {
    "s": ["second", "minute", "hour", "dayofweek", "dayofmonth", "dayofyear"],
    "t": ["minute", "hour", "dayofweek", "dayofmonth", "dayofyear"],
    "h": ["hour", "dayofweek", "dayofmonth", "dayofyear"],
    "d": ["dayofweek", "dayofmonth", "dayofyear"],
    "b": ["dayofweek", "dayofmonth", "dayofyear"],
    "w": ["dayofmonth", "weekofyear"],
    "m": ["month"],
    "q": ["month"],
    "y": [],
}

# Typical seasonal period (in steps) per frequency code, used by the seasonal-naive baseline and MASE.
SEASON_BY_FREQ = {"s": 60, "t": 60, "h": 24, "d": 7, "b": 5, "w": 52, "m": 12, "q": 4, "y": 1}


def freq_code(dates: pd.DatetimeIndex) -> str:
    """Reduce a datetime index to TSLib's one-letter frequency code (s, t, h, d, b, w, m, q, y).

    Raises:
        ValueError: if fewer than three dates are given or no regular frequency can be inferred.
    """
    if len(dates) < 3:
        raise ValueError(f"need at least 3 dates to infer a frequency, got {len(dates)}")
    step = pd.Series(dates[1:] - dates[:-1]).median()
    seconds = step.total_seconds()
    for code, limit in (("s", 59), ("t", 3599), ("h", 86399), ("d", 6 * 86400), ("w", 27 * 86400),
                        ("m", 85 * 86400), ("q", 360 * 86400)):
        if seconds <= limit:
            return code
    return "y"


def n_time_features(freq: str) -> int:
    """Number of calendar features :func:`time_features` returns for ``freq``."""
    return len(_BY_FREQ[_normalise(freq)])


def _normalise(freq: str) -> str:
    f = freq.lower().strip()
    f = {"min": "t", "a": "y", "ys": "y", "ms": "m", "qs": "q"}.get(f, f)
    f = f.lstrip("0123456789")[:1] if f not in _BY_FREQ else f
    if f not in _BY_FREQ:
        raise ValueError(f"unknown frequency {freq!r}; expected one of {sorted(_BY_FREQ)}")
    return f


def time_features(dates: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Calendar features of ``dates``, shape ``[T, F]`` float32, each in [-0.5, 0.5]."""
    idx = pd.DatetimeIndex(dates)
    names = _BY_FREQ[_normalise(freq)]
    if not names:
        return np.zeros((len(idx), 0), dtype=np.float32)
    return np.stack([np.asarray(_FEATURES[n](idx), dtype=np.float32) for n in names], axis=1)
