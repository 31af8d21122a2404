"""Synthetic AR processes of the AR-Net paper (Triebe et al. 2019, arXiv:1911.12436, Section 4).

The paper's experiments sample a stationary AR(3) process, optionally embed its coefficients in a longer,
sparse lag vector (``pad_to`` lags, e.g. true lags 1, 3 and 10 inside ``p = 20``), and fit an AR(p) model
to windows of ``p`` inputs and one target. Estimation quality is the symmetric total percentage error of
the coefficients (``sTPE``, :func:`stpe`). This mirrors ``ourownstory/AR-Net`` (``data_loader.py``,
``v0_1_pure_pytorch/utils.py``): ``x_t = sum_k a_k x_{t-k} + e_t`` with Gaussian noise, series made
zero-mean after sampling.

Example:
    >>> series, coeffs = sparse_ar_process(1020, {1: 0.2, 3: 0.3, 10: -0.5}, n_lags=20, seed=0)
    >>> x, y = ar_windows(series, n_lags=20)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

PAPER_SPARSE_AR = {1: 0.2, 3: 0.3, 10: -0.5}
"""Sparse AR(3) coefficients by lag of the paper's sparse experiment (true lags 1, 3, 10 within p = 20)."""


def is_stationary(coefficients: Sequence[float]) -> bool:
    """Whether ``x_t = sum_k a_k x_{t-k} + e_t`` is stationary (all roots of the AR polynomial outside |z| = 1)."""
    a = np.asarray(coefficients, dtype=float)
    if a.size == 0 or not np.any(a):
        return True
    poly = np.r_[1.0, -a]  # 1 - a_1 z - ... - a_p z^p, highest power last
    roots = np.roots(poly[::-1])
    return bool(np.all(np.abs(roots) > 1.0))


def random_ar_coefficients(order: int, seed: int | None = None, max_tries: int = 100) -> np.ndarray:
    """Random stationary AR coefficients, drawn like ``AR-Net/data_loader.py`` (``generate_armaprocess_data``).

    Uniform in [-1, 1]; if their absolute sum exceeds 1 they are rescaled to a sum in [0.5, 1); then
    centred to zero mean; redrawn until stationary.

    Args:
        order: number of lags.
        seed: seed of the numpy generator.
        max_tries: give up after this many draws.

    Returns:
        coefficients ``[order]``, entry ``k-1`` for lag ``k``.

    Raises:
        ValueError: if ``order < 1`` or no stationary draw was found.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        a = 2.0 * rng.random(order) - 1.0
        abs_sum = np.abs(a).sum()
        if abs_sum > 1.0:
            a = a / (abs_sum + 1e-5) * (0.5 + 0.5 * rng.random())
        a = a - a.mean()
        if is_stationary(a):
            return a
    raise ValueError(f"no stationary AR({order}) coefficients found in {max_tries} draws")


def coefficient_vector(coefficients: Mapping[int, float] | Sequence[float], n_lags: int | None = None) -> np.ndarray:
    """Dense lag vector ``[n_lags]`` (entry ``k-1`` = lag ``k``) from a ``{lag: value}`` mapping or a sequence.

    Raises:
        ValueError: a lag < 1 or beyond ``n_lags``.
    """
    if isinstance(coefficients, Mapping):
        lags = [int(k) for k in coefficients]
        if any(k < 1 for k in lags):
            raise ValueError(f"coefficients: lags must be >= 1, got {sorted(lags)}")
        size = n_lags if n_lags is not None else max(lags)
        if max(lags) > size:
            raise ValueError(f"coefficients: lag {max(lags)} exceeds n_lags={size}")
        out = np.zeros(size)
        for k, v in coefficients.items():
            out[int(k) - 1] = float(v)
        return out
    a = np.asarray(coefficients, dtype=float).reshape(-1)
    size = n_lags if n_lags is not None else a.size
    if a.size > size:
        raise ValueError(f"coefficients: {a.size} lags exceed n_lags={size}")
    return np.r_[a, np.zeros(size - a.size)]


def ar_process(n: int, coefficients: Sequence[float], noise_std: float = 1.0, burn_in: int = 500,
               seed: int | None = None, zero_mean: bool = True) -> np.ndarray:
    """Sample ``n`` steps of ``x_t = sum_k a_k x_{t-k} + e_t``, ``e_t ~ N(0, noise_std^2)``.

    Args:
        n: number of returned steps.
        coefficients: ``[p]``, entry ``k-1`` for lag ``k``.
        noise_std: standard deviation of the innovations (0 gives a noise-free series from a random start).
        burn_in: steps simulated and dropped first so the series starts near stationarity.
        seed: seed of the numpy generator.
        zero_mean: subtract the sample mean (as the AR-Net repo does).

    Returns:
        series ``[n]`` (float64).

    Raises:
        ValueError: non-positive ``n``, negative ``noise_std`` or ``burn_in``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if noise_std < 0 or burn_in < 0:
        raise ValueError(f"noise_std and burn_in must be >= 0, got {noise_std} and {burn_in}")
    a = np.asarray(coefficients, dtype=float).reshape(-1)
    rng = np.random.default_rng(seed)
    total = n + burn_in
    if noise_std > 0:
        e = rng.normal(0.0, noise_std, size=total)
        x = lfilter([1.0], np.r_[1.0, -a], e)
    else:  # deterministic recursion from a random initial window
        x = np.zeros(total + a.size)
        x[: a.size] = rng.normal(size=a.size)
        for t in range(a.size, x.size):
            x[t] = a @ x[t - a.size: t][::-1]
        x = x[a.size:]
    x = x[burn_in:]
    return x - x.mean() if zero_mean else x


def sparse_ar_process(n: int, coefficients: Mapping[int, float] | Sequence[float] = PAPER_SPARSE_AR,
                      n_lags: int | None = None, noise_std: float = 1.0, burn_in: int = 500,
                      seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's sparse experiment: an AR process whose coefficients sit inside ``n_lags`` lags.

    Args:
        n: number of steps.
        coefficients: ``{lag: value}`` (default: the paper's lags 1, 3, 10) or a dense sequence.
        n_lags: length of the padded lag vector ``p`` (default: the largest lag).
        noise_std: innovation standard deviation (the paper uses 1.0).
        burn_in: dropped warm-up steps.
        seed: seed of the numpy generator.

    Returns:
        ``(series [n], coefficients [n_lags])``.
    """
    a = coefficient_vector(coefficients, n_lags)
    return ar_process(n, a, noise_std=noise_std, burn_in=burn_in, seed=seed), a


def ar_windows(series: np.ndarray, n_lags: int, n_forecasts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """All windows ``x = series[s : s+p]`` (oldest first) and ``y = series[s+p : s+p+h]``.

    Returns:
        ``(x [N, n_lags], y [N, n_forecasts])`` with ``N = len(series) - n_lags - n_forecasts + 1``.

    Raises:
        ValueError: a non-1D series or one shorter than ``n_lags + n_forecasts``.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"series must be 1D, got shape {s.shape}")
    n = s.size - n_lags - n_forecasts + 1
    if n < 1:
        raise ValueError(f"series of length {s.size} is shorter than n_lags + n_forecasts = "
                         f"{n_lags + n_forecasts}")
    idx = np.arange(n)[:, None]
    x = s[idx + np.arange(n_lags)]
    y = s[idx + n_lags + np.arange(n_forecasts)]
    return x, y


def stpe(estimated: np.ndarray, true: np.ndarray) -> float:
    """Symmetric total percentage error of AR coefficients (AR-Net paper, eq. 5; ``compute_stats_ar``).

    ``sTPE = 100 * sum |w - a| / sum (|w| + |a|)``, in [0, 100].

    Raises:
        ValueError: if the shapes differ.
    """
    w, a = np.asarray(estimated, dtype=float), np.asarray(true, dtype=float)
    if w.shape != a.shape:
        raise ValueError(f"estimated shape {w.shape} != true shape {a.shape}")
    return float(100.0 * np.abs(w - a).sum() / (1e-8 + (np.abs(w) + np.abs(a)).sum()))


def sparse_ar_frame(n: int = 1250, coefficients: Mapping[int, float] | Sequence[float] | None = None,
                    n_lags: int = 20, noise_std: float = 1.0, seed: int = 0, freq: str = "h",
                    start: str = "2000-01-01") -> pd.DataFrame:
    """The sparse AR series as a DataFrame with a ``date`` column and one ``value`` column (for configs).

    Args:
        n: number of steps.
        coefficients: ``{lag: value}``; default: the paper's lags 1, 3, 10.
        n_lags: padded lag count ``p``.
        noise_std: innovation standard deviation.
        seed: seed of the numpy generator.
        freq: pandas frequency of the synthetic timestamps.
        start: first timestamp.
    """
    series, _ = sparse_ar_process(n, PAPER_SPARSE_AR if coefficients is None else coefficients,
                                  n_lags=n_lags, noise_std=noise_std, seed=seed)
    return pd.DataFrame({"date": pd.date_range(start, periods=n, freq=freq), "value": series})
