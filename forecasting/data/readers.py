"""Readers of real forecasting formats into one validated ``pandas.DataFrame``.

The result always has a ``date`` column of increasing timestamps followed by numeric variable columns:
the ETT / Time-Series-Library CSV layout (``date,HUFL,...,OT``). Inputs can be a CSV or parquet file with a
date column, a DataFrame (date column or DatetimeIndex / PeriodIndex) or a Series.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from seqlab.core.errors import DataError


def read_table(source: str | Path | pd.DataFrame | pd.Series, *, date_col: str = "date",
               fill_na: str | None = None, name: str | None = None) -> pd.DataFrame:
    """Read a series table and validate it.

    Args:
        source: path to a ``.csv`` / ``.parquet`` file, a DataFrame or a Series.
        date_col: name of the timestamp column (a DatetimeIndex or PeriodIndex is used when the column is absent).
        fill_na: ``None`` (NaN is an error), ``"interpolate"`` (linear in time, then edge fill) or ``"ffill"``.
        name: what to call the source in error messages.

    Returns:
        DataFrame with column ``date`` (datetime64) then the numeric variable columns.

    Raises:
        DataError: missing or unreadable file, no date column, dates not strictly increasing, a non-numeric
            column, or NaN (naming the column and first bad row) when ``fill_na`` is None.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else type(source).__name__)
    if isinstance(source, (str, Path)):
        df = _read_file(Path(source))
    elif isinstance(source, pd.Series):
        df = source.to_frame(name=source.name if source.name is not None else "value")
    elif isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        raise DataError(f"cannot read a series from {type(source).__name__}; expected a path, DataFrame or Series")
    df = _with_date_column(df, date_col, label)
    return validate_frame(df, fill_na=fill_na, name=label)


def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for bad files
        raise DataError(f"cannot read {path}: {exc}") from exc


def _with_date_column(df: pd.DataFrame, date_col: str, label: str) -> pd.DataFrame:
    if date_col in df.columns:
        dates = df[date_col]
        df = df.drop(columns=[date_col])
    elif isinstance(df.index, pd.PeriodIndex):
        dates = df.index.to_timestamp()
    elif isinstance(df.index, pd.DatetimeIndex):
        dates = df.index
    else:
        raise DataError(f"{label}: no date column {date_col!r} and no DatetimeIndex; columns are {list(df.columns)}")
    try:
        dates = pd.to_datetime(pd.Series(np.asarray(dates)))
    except Exception as exc:
        raise DataError(f"{label}: column {date_col!r} does not parse as dates: {exc}") from exc
    out = df.reset_index(drop=True)
    out.insert(0, "date", dates.values)
    return out


def validate_frame(df: pd.DataFrame, *, fill_na: str | None = None, name: str = "data") -> pd.DataFrame:
    """Check dates increase, values are numeric and finite; optionally fill NaN (see :func:`read_table`)."""
    if len(df.columns) < 2:
        raise DataError(f"{name}: no variable columns besides 'date'")
    dates = pd.DatetimeIndex(df["date"])
    if dates.isna().any():
        raise DataError(f"{name}: missing date at row {int(np.argmax(dates.isna()))}")
    bad = np.nonzero(np.diff(dates.asi8) <= 0)[0]
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(f"{name}: dates are not strictly increasing at row {i} ({dates[i - 1]} then {dates[i]})")
    for col in df.columns[1:]:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"{name}: column {col!r} is not numeric (dtype {df[col].dtype})")
    df = df.copy()
    values = df.columns[1:]
    df[values] = df[values].astype("float64")
    if fill_na is None:
        for col in values:
            nan = df[col].isna().to_numpy() | ~np.isfinite(df[col].to_numpy())
            if nan.any():
                row = int(np.argmax(nan))
                raise DataError(f"{name}: column {col!r} has {int(nan.sum())} NaN/inf values, first at row {row} "
                                f"(date {df['date'].iloc[row]}); pass fill_na='interpolate' to fill them")
    elif fill_na == "interpolate":
        filled = df.set_index("date")[values].replace([np.inf, -np.inf], np.nan)
        filled = filled.interpolate(method="time", limit_direction="both")
        df[values] = filled.to_numpy()
    elif fill_na == "ffill":
        df[values] = df[values].replace([np.inf, -np.inf], np.nan).ffill().bfill()
    else:
        raise DataError(f"fill_na must be None, 'interpolate' or 'ffill', got {fill_na!r}")
    return df
