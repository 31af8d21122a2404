"""Forecasting data: readers of real formats, named datasets, protocol splits, the LightningDataModule."""
from seqlab.forecasting.data.datamodule import ForecastingDataModule
from seqlab.forecasting.data.datasets import DATASETS, ETT_URL, PACKAGED_NOTES, load_dataset
from seqlab.forecasting.data.readers import read_table, validate_frame
from seqlab.forecasting.data.splits import ett_borders, ratio_borders
from seqlab.forecasting.data.timefeatures import freq_code, n_time_features, time_features
from seqlab.forecasting.data.windows import WindowDataset

__all__ = [
    "DATASETS",
    "ETT_URL",
    "PACKAGED_NOTES",
    "ForecastingDataModule",
    "WindowDataset",
    "ett_borders",
    "freq_code",
    "load_dataset",
    "n_time_features",
    "ratio_borders",
    "read_table",
    "time_features",
    "validate_frame",
]
