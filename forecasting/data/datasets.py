"""Named datasets: the ETT benchmark files and real series shipped inside installed packages.

ETT (Zhou et al., Informer, AAAI 2021; https://github.com/zhouhaoyi/ETDataset) is read from a given path,
else from ``$SEQLAB_DATA_DIR/ett/<file>`` or ``$SEQLAB_DATA_DIR/<file>``, else downloaded from the public
GitHub raw URL into ``$SEQLAB_DATA_DIR/ett`` (default ``~/.cache/seqlab/data/ett``) when the network allows.

Offline series (no download): ``co2`` (statsmodels, Mauna Loa weekly CO2 1958-2001; its 59 missing weeks are
filled by linear interpolation in time, always, and :data:`PACKAGED_NOTES` says so), ``sunspots``
(statsmodels, yearly 1700-2008), ``macrodata`` (statsmodels, US quarterly 1959-2009, 12 variables) and
``airline`` (sktime, monthly passengers 1949-1960).
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pandas as pd
from seqlab.core.errors import DataError
from seqlab.forecasting.data.readers import read_table

ETT_FILES = {"etth1": "ETTh1.csv", "etth2": "ETTh2.csv", "ettm1": "ETTm1.csv", "ettm2": "ETTm2.csv"}
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{file}"
PACKAGED = ("co2", "sunspots", "macrodata", "airline")
PACKAGED_NOTES = {
    "co2": "statsmodels co2 (weekly, 2284 weeks); 59 missing weeks filled by linear interpolation in time",
    "sunspots": "statsmodels sunspots (yearly SUNACTIVITY, 309 years)",
    "macrodata": "statsmodels macrodata (quarterly, 12 US macro variables, 203 quarters)",
    "airline": "sktime airline (monthly passengers, 144 months)",
}
DATASETS = tuple(ETT_FILES) + PACKAGED


def data_dir() -> Path:
    """``$SEQLAB_DATA_DIR`` or ``~/.cache/seqlab/data``."""
    return Path(os.environ.get("SEQLAB_DATA_DIR", Path.home() / ".cache" / "seqlab" / "data")).expanduser()


def resolve_ett_path(name: str, path: str | Path | None = None) -> Path | None:
    """Where the ETT file for ``name`` is, or None if it is not on disk (see module docstring)."""
    file = ETT_FILES[name]
    candidates = [Path(path).expanduser()] if path is not None else []
    if path is None:
        candidates += [data_dir() / "ett" / file, data_dir() / file]
    return next((c for c in candidates if c.is_file()), None)


def download_ett(name: str, dest: Path | None = None) -> Path:
    """Download an ETT CSV from the public ETDataset repository.

    Raises:
        DataError: naming the destination path and the URL when the download fails (e.g. no network).
    """
    file = ETT_FILES[name]
    url = ETT_URL.format(file=file)
    dest = dest or data_dir() / "ett" / file
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
            f.write(r.read())
        tmp.replace(dest)
    except Exception as exc:
        raise DataError(f"dataset {name!r}: {dest} not found and download from {url} failed ({exc}); "
                        f"download it by hand to {dest} or set SEQLAB_DATA_DIR") from exc
    return dest


def load_packaged(name: str) -> pd.DataFrame:
    """One of the offline series in :data:`PACKAGED` as a validated ``date`` + values frame."""
    if name == "co2":
        import statsmodels.api as sm

        df = sm.datasets.co2.load_pandas().data
        return read_table(df, fill_na="interpolate", name="co2")
    if name == "sunspots":
        import statsmodels.api as sm

        df = sm.datasets.sunspots.load_pandas().data
        df = pd.DataFrame({"date": pd.to_datetime(df["YEAR"].astype(int).astype(str), format="%Y"),
                           "SUNACTIVITY": df["SUNACTIVITY"].to_numpy()})
        return read_table(df, name="sunspots")
    if name == "macrodata":
        import statsmodels.api as sm

        df = sm.datasets.macrodata.load_pandas().data
        dates = pd.PeriodIndex.from_fields(year=df["year"].astype(int), quarter=df["quarter"].astype(int),
                                           freq="Q").to_timestamp()
        out = df.drop(columns=["year", "quarter"])
        out.insert(0, "date", dates)
        return read_table(out, name="macrodata")
    if name == "airline":
        from sktime.datasets import load_airline

        s = load_airline()
        s.name = "passengers"
        return read_table(s, name="airline")
    raise DataError(f"unknown packaged dataset {name!r}; expected one of {PACKAGED}")


def load_dataset(name: str, path: str | Path | None = None, *, download: bool = True) -> pd.DataFrame:
    """Load a named dataset (see :data:`DATASETS`) as a validated frame.

    Raises:
        DataError: unknown name, or an ETT file that is neither on disk nor downloadable.
    """
    key = name.lower()
    if key in PACKAGED:
        return load_packaged(key)
    if key not in ETT_FILES:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or a path=")
    found = resolve_ett_path(key, path)
    if found is None:
        if path is not None and not download:
            raise DataError(f"dataset {name!r}: file not found: {path}")
        dest = Path(path).expanduser() if path is not None else None
        found = download_ett(key, dest) if download else None
        if found is None:
            raise DataError(f"dataset {name!r}: {ETT_FILES[key]} not found under {data_dir()}; "
                            f"get it from {ETT_URL.format(file=ETT_FILES[key])}")
    return read_table(found, name=str(found))
