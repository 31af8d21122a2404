"""Readers of public interaction-log formats into one ``[user, item, timestamp]`` table.

Supported formats (``fmt="auto"`` picks one from the file name and first line):

* ``ml-1m``: MovieLens-1M ``ratings.dat``, ``UserID::MovieID::Rating::Timestamp``, no header.
* ``ml-100k``: MovieLens-100K ``u.data``, ``user id \\t item id \\t rating \\t timestamp``, no header.
* ``recbole``: RecBole atomic ``.inter`` files, tab separated, header of ``name:type`` fields
  (``user_id:token  item_id:token  rating:float  timestamp:float``).
* ``csv``: comma-separated with a header naming ``user``, ``item``, ``timestamp`` (``user_id``/``item_id``
  are accepted as aliases).

Every path ends in a ``DataFrame`` with string ``user`` and ``item`` columns and a float ``timestamp``; anything
else raises ``seqlab.core.errors.DataError`` naming the path and the problem.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
from seqlab.core.errors import DataError

FORMATS = ("ml-1m", "ml-100k", "recbole", "csv")
_ALIASES = {"user": ("user", "user_id", "userid"), "item": ("item", "item_id", "itemid", "movie_id"),
            "timestamp": ("timestamp", "time", "ts")}


def recbole_ml100k_path() -> Path:
    """Path of ``ml-100k.inter`` shipped in the installed RecBole wheel (RecBole is located, never imported).

    Raises:
        DataError: if RecBole is not installed (install it with ``pip install --no-deps recbole==1.2.1``).
    """
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the default dataset is ml-100k from the RecBole wheel, but recbole is not installed; "
                        "run `pip install --no-deps recbole==1.2.1` or pass data.path=<interactions file>")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k" / "ml-100k.inter"
    if not path.is_file():
        raise DataError(f"RecBole is installed but {path} is missing")
    return path


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its name and first line; raise DataError if none fits."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().strip()
    if not first:
        raise DataError(f"{path}: file is empty")
    if path.suffix == ".inter" or ("\t" in first and ":" in first.split("\t")[0]):
        return "recbole"
    if "::" in first:
        return "ml-1m"
    fields = first.split("\t")
    if len(fields) == 4 and all(_is_number(x) for x in fields):
        return "ml-100k"
    if "," in first:
        names = {c.strip().lower() for c in first.split(",")}
        if any(a in names for a in _ALIASES["user"]) or any(a in names for a in _ALIASES["item"]):
            return "csv"
    raise DataError(f"{path}: unknown interaction format (first line {first[:80]!r}); expected one of "
                    f"{', '.join(FORMATS)}: MovieLens ratings.dat ('::'), u.data (4 tab-separated numbers), "
                    "RecBole .inter ('name:type' header) or CSV with a user,item,timestamp header")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _finish(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame({"user": df["user"].astype(str), "item": df["item"].astype(str)})
    ts = pd.to_numeric(df["timestamp"], errors="coerce")
    bad = ts.isna() | df["user"].isna() | df["item"].isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{path}: {int(bad.sum())} rows with a missing/NaN user, item or timestamp "
                        f"(first at data row {row})")
    out["timestamp"] = ts.astype(float).to_numpy()
    if out.empty:
        raise DataError(f"{path}: no interactions")
    return out


def _require(columns: dict[str, str | None], available: list[str], path: Path) -> None:
    missing = [k for k, v in columns.items() if v is None]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(available)}")


def read_interactions(path: str | Path, fmt: str = "auto") -> pd.DataFrame:
    """Read an interaction log into ``DataFrame[user: str, item: str, timestamp: float]`` in file order.

    Args:
        path: the file (``ratings.dat``, ``u.data``, ``*.inter`` or ``*.csv``).
        fmt: ``"auto"`` or one of ``FORMATS``.

    Raises:
        DataError: missing file, unknown format, missing columns, NaN or unparsable values, empty data.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"interaction file not found: {path}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r} for {path}; expected auto or one of {', '.join(FORMATS)}")
    try:
        if fmt == "ml-1m":
            df = pd.read_csv(path, sep="::", engine="python", header=None, dtype=str)
            if df.shape[1] != 4:
                raise DataError(f"{path}: expected 4 '::'-separated columns "
                                f"(UserID::MovieID::Rating::Timestamp), got {df.shape[1]}")
            df.columns = ["user", "item", "rating", "timestamp"]
        elif fmt == "ml-100k":
            df = pd.read_csv(path, sep="\t", header=None, dtype=str)
            if df.shape[1] != 4:
                raise DataError(f"{path}: expected 4 tab-separated columns (user, item, rating, timestamp), "
                                f"got {df.shape[1]}")
            df.columns = ["user", "item", "rating", "timestamp"]
        elif fmt == "recbole":
            df = pd.read_csv(path, sep="\t", dtype=str)
            names = [c.split(":")[0] for c in df.columns]
            df.columns = names
            cols = {"user": "user_id" if "user_id" in names else None,
                    "item": "item_id" if "item_id" in names else None,
                    "timestamp": "timestamp" if "timestamp" in names else None}
            _require(cols, list(names), path)
            df = df.rename(columns={v: k for k, v in cols.items()})
        else:
            df = pd.read_csv(path, dtype=str, skipinitialspace=True)
            lower = {c.strip().lower(): c for c in df.columns}
            cols = {k: next((lower[a] for a in aliases if a in lower), None) for k, aliases in _ALIASES.items()}
            _require(cols, list(df.columns), path)
            df = df.rename(columns={v: k for k, v in cols.items()})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: cannot parse as {fmt}: {e}") from None
    return _finish(df, path)
