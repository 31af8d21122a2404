"""``ForecastingDataModule``: named datasets or files -> protocol split -> scaled sliding windows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from seqlab.core.errors import DataError
from seqlab.forecasting.data.datasets import DATASETS, ETT_FILES, PACKAGED, load_dataset, resolve_ett_path
from seqlab.forecasting.data.readers import read_table
from seqlab.forecasting.data.splits import ett_borders, ratio_borders
from seqlab.forecasting.data.timefeatures import SEASON_BY_FREQ, freq_code, time_features
from seqlab.forecasting.data.windows import WindowDataset
from torch.utils.data import DataLoader, Dataset

_SPLITS = ("ett", "ratio")
_FEATURES = ("M", "S", "MS")


class _FutureDataset(Dataset):
    """One window whose input is the last ``seq_len`` rows and whose horizon lies past the data's end."""

    def __init__(self, x: torch.Tensor, x_mark: torch.Tensor, y_mark: torch.Tensor, start: int) -> None:
        self.item = {"x": x, "y": torch.full((y_mark.shape[0], x.shape[1]), float("nan")), "x_mark": x_mark,
                     "y_mark": y_mark, "start": torch.tensor(start)}

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.item


class ForecastingDataModule(L.LightningDataModule):
    """Forecasting windows under the ETT or ratio protocol (Time-Series-Library conventions).

    Args:
        dataset: a named dataset (``etth1``, ``etth2``, ``ettm1``, ``ettm2``, ``co2``, ``sunspots``,
            ``macrodata``, ``airline``) or None when ``path`` / ``frame`` is given.
        path: CSV or parquet file with a ``date_col`` column (for ETT names: where the file is).
        frame: a DataFrame or Series instead of a file (library use).
        target: target column for ``S`` / ``MS`` (default: the last column, ``OT`` for ETT).
        features: ``M`` (all variables in and out), ``S`` (target only), ``MS`` (all in, target out; the
            target is moved to the last column, as in TSLib).
        seq_len: lookback L.
        pred_len: horizon H.
        split: ``ett`` (12/4/4 months) or ``ratio``; ``None`` picks ``ett`` for ETT names, else ``ratio``.
        ratios: train/val/test fractions of the ratio split (TSLib 7:1:2; TPGN paper 6:2:2).
        scale: standardise with mean/std of the training split only.
        train_percent: use only this percent of the training windows (Time-LLM few-shot protocol).
        batch_size: windows per batch (val/test/predict use the same and never drop the last batch).
        num_workers: DataLoader workers.
        date_col: name of the timestamp column in files.
        fill_na: None (NaN is a DataError naming the column and row), ``interpolate`` or ``ffill``.
        season_length: seasonal period for the seasonal-naive baseline and MASE (default from the frequency).
        predict_on: ``test`` (non-overlapping test windows with actuals) or ``future`` (past the data's end).
        download: allow downloading ETT files that are not on disk.
        drop_last_train: drop the last incomplete training batch, as the TPGN / WITRAN
            ``data_provider/data_factory.py`` do (``drop_last=True`` for train); validation, test and predict
            loaders never drop.

    Raises:
        DataError: unknown dataset, missing file (names the path and where to get it), bad option values;
            at ``setup``: missing target column, NaN, non-increasing dates, series too short for L + H.
    """

    def __init__(self, dataset: str | None = None, path: str | None = None, frame: Any = None,
                 target: str | None = None, features: str = "S", seq_len: int = 96, pred_len: int = 96,
                 split: str | None = None, ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
                 scale: bool = True, train_percent: int = 100, batch_size: int = 32, num_workers: int = 0,
                 date_col: str = "date", fill_na: str | None = None, season_length: int | None = None,
                 predict_on: str = "test", download: bool = True, drop_last_train: bool = False) -> None:
        super().__init__()
        if dataset is None and path is None and frame is None:
            raise DataError("ForecastingDataModule needs dataset=, path= or frame=")
        if dataset is not None and dataset.lower() not in DATASETS:
            raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} "
                            "(or pass path= to a CSV/parquet file)")
        if features not in _FEATURES:
            raise DataError(f"features must be one of {_FEATURES}, got {features!r}")
        if split is not None and split not in _SPLITS:
            raise DataError(f"split must be one of {_SPLITS}, got {split!r}")
        if predict_on not in ("test", "future"):
            raise DataError(f"predict_on must be 'test' or 'future', got {predict_on!r}")
        if seq_len < 1 or pred_len < 1:
            raise DataError(f"seq_len and pred_len must be >= 1, got {seq_len}, {pred_len}")
        if not 0 < train_percent <= 100:
            raise DataError(f"train_percent must be in (0, 100], got {train_percent}")
        self.dataset = dataset.lower() if dataset is not None else None
        if path is not None:
            path = str(Path(path).expanduser())
            is_ett = self.dataset in ETT_FILES
            if not Path(path).is_file() and not (is_ett and download):
                hint = "; get it from the ETDataset repository" if is_ett else ""
                raise DataError(f"data file not found: {path}{hint}")
        elif self.dataset in ETT_FILES and not download and resolve_ett_path(self.dataset) is None:
            raise DataError(f"dataset {dataset!r}: {ETT_FILES[self.dataset]} not found (set SEQLAB_DATA_DIR)")
        self.path, self.frame, self.target, self.features = path, frame, target, features
        self.seq_len, self.pred_len = int(seq_len), int(pred_len)
        self.split = split or ("ett" if self.dataset in ETT_FILES else "ratio")
        self.ratios = tuple(float(r) for r in ratios)
        self.scale, self.train_percent = scale, train_percent
        self.batch_size, self.num_workers = batch_size, num_workers
        self.date_col, self.fill_na, self.predict_on, self.download = date_col, fill_na, predict_on, download
        self._season_length = season_length
        self.drop_last_train = bool(drop_last_train)
        self._ready = False

    # ----------------------------------------------------------------------------------------- loading
    def _load_frame(self) -> pd.DataFrame:
        if self.frame is not None:
            return read_table(self.frame, date_col=self.date_col, fill_na=self.fill_na, name="frame")
        if self.dataset in PACKAGED:
            return load_dataset(self.dataset)
        if self.dataset in ETT_FILES:
            return load_dataset(self.dataset, self.path, download=self.download)
        return read_table(self.path, date_col=self.date_col, fill_na=self.fill_na)

    def setup(self, stage: str | None = None) -> None:
        """Load, split, scale and window the series (idempotent)."""
        if self._ready:
            return
        df = self._load_frame()
        columns = list(df.columns[1:])
        target = self.target if self.target is not None else columns[-1]
        if target not in columns:
            raise DataError(f"target column {target!r} not in the data; columns are {columns}")
        if self.features == "S":
            columns = [target]
        else:
            columns = [c for c in columns if c != target] + [target]
        self.columns, self.target_name = columns, target
        self.dates = pd.DatetimeIndex(df["date"])
        self.freq = freq_code(self.dates)
        values = df[columns].to_numpy(dtype=np.float64)
        n = len(values)
        if self.split == "ett":
            step_s = pd.Series(self.dates[1:] - self.dates[:-1]).median().total_seconds()
            b1, b2 = ett_borders(n, self.seq_len, max(1, round(3600 / step_s)))
        else:
            b1, b2 = ratio_borders(n, self.seq_len, self.ratios)
        # the scaler (and the MASE scale) see the whole training split; only the training windows are cut,
        # as Time-LLM's data_loader (Dataset_ETT_hour) does for its few-shot ``percent``
        train = values[b1[0]:b2[0]]
        if self.train_percent < 100:
            b2[0] = (b2[0] - self.seq_len) * self.train_percent // 100 + self.seq_len
        self.border1s, self.border2s = b1, b2
        self.mean = train.mean(0) if self.scale else np.zeros(len(columns))
        std = train.std(0) if self.scale else np.ones(len(columns))
        self.std = np.where(std > 0, std, 1.0)
        scaled = ((values - self.mean) / self.std).astype(np.float32)
        self.values, self.scaled = values, scaled
        self.marks = time_features(self.dates, self.freq)
        self.sets = {name: WindowDataset(scaled, self.marks, b1[i], b2[i], self.seq_len, self.pred_len)
                     for i, name in enumerate(("train", "val", "test"))}
        for name, ds in self.sets.items():
            if len(ds) == 0:
                i = ("train", "val", "test").index(name)
                raise DataError(f"the {name} split has {b2[i] - b1[i]} rows (of {n}), fewer than "
                                f"seq_len + pred_len = {self.seq_len + self.pred_len}; the series is too short")
        m = self.season_length
        diffs = np.abs(train[m:] - train[:-m]) if len(train) > m else np.abs(np.diff(train, axis=0))
        self.mase_scale_original = np.maximum(diffs.mean(0), 1e-8)
        self._ready = True

    # ----------------------------------------------------------------------------------------- properties
    @property
    def n_vars(self) -> int:
        """Number of input channels (after ``setup``)."""
        return len(self.columns)

    @property
    def target_slice(self) -> slice:
        """Channels scored by loss and metrics: the last one for ``MS``, all otherwise."""
        return slice(-1, None) if self.features == "MS" else slice(None)

    @property
    def n_time_features(self) -> int:
        """Calendar features per step (after ``setup``)."""
        return self.marks.shape[1]

    @property
    def season_length(self) -> int:
        """Seasonal period in steps: the given one, else the frequency's usual period (hourly 24, weekly 52)."""
        if self._season_length is not None:
            return int(self._season_length)
        return SEASON_BY_FREQ.get(getattr(self, "freq", "h"), 1)

    def scaler_stats(self, channels: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training mean and std of the chosen channels, as float32 tensors ``[C]``."""
        sl = channels if channels is not None else slice(None)
        return (torch.as_tensor(self.mean[sl], dtype=torch.float32),
                torch.as_tensor(self.std[sl], dtype=torch.float32))

    def inverse_transform(self, y: torch.Tensor, channels: slice | None = None) -> torch.Tensor:
        """Map scaled values ``[..., C]`` back to the original scale."""
        mean, std = self.scaler_stats(channels)
        return y * std.to(y) + mean.to(y)

    def mase_scale(self, scaled: bool, channels: slice | None = None) -> torch.Tensor:
        """MASE denominator per channel: mean absolute seasonal difference of the training split."""
        sl = channels if channels is not None else slice(None)
        scale = self.mase_scale_original[sl] / (self.std[sl] if scaled else 1.0)
        return torch.as_tensor(scale, dtype=torch.float32)

    def future_dates(self, n: int) -> pd.DatetimeIndex:
        """The ``n`` timestamps after the data's last one, on the data's regular step."""
        freq = pd.infer_freq(self.dates[-min(len(self.dates), 50):])
        if freq is None:
            step = pd.Series(self.dates[1:] - self.dates[:-1]).median()
            return pd.DatetimeIndex([self.dates[-1] + step * (i + 1) for i in range(n)])
        return pd.date_range(self.dates[-1], periods=n + 1, freq=freq)[1:]

    def window_dates(self, start: int) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
        """Input and horizon timestamps of the window whose input starts at row ``start``."""
        mid = start + self.seq_len
        hist = self.dates[start:mid]
        end = mid + self.pred_len
        fut = self.dates[mid:end] if end <= len(self.dates) else self.future_dates(self.pred_len)
        return hist, fut

    # ----------------------------------------------------------------------------------------- loaders
    def _loader(self, ds: Dataset, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.sets["train"], shuffle=True, drop_last=self.drop_last_train)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.sets["val"])

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.sets["test"])

    def predict_dataloader(self) -> DataLoader:
        if self.predict_on == "future":
            start = len(self.scaled) - self.seq_len
            fut = self.future_dates(self.pred_len)
            ds: Dataset = _FutureDataset(torch.as_tensor(self.scaled[start:]), torch.as_tensor(self.marks[start:]),
                                         torch.as_tensor(time_features(fut, self.freq)), start)
        else:
            b1, b2 = self.border1s[2], self.border2s[2]
            ds = WindowDataset(self.scaled, self.marks, b1, b2, self.seq_len, self.pred_len, stride=self.pred_len)
        return self._loader(ds)
