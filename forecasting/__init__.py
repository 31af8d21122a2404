"""seqlab.forecasting: TPGN, baselines and any-block forecasters on real time series, from YAML or Python."""
from seqlab.forecasting.data import ForecastingDataModule, load_dataset, read_table
from seqlab.forecasting.metrics import MetricAccumulator, all_metrics
from seqlab.forecasting.models import (
    TPGN,
    ARNet,
    BlockForecaster,
    ClassicAR,
    DLinear,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    TimeLLM,
    create_forecaster,
    list_forecasters,
)
from seqlab.forecasting.task import ForecastingTask

__all__ = [
    "TPGN",
    "ARNet",
    "BlockForecaster",
    "ClassicAR",
    "DLinear",
    "ForecastingDataModule",
    "ForecastingTask",
    "MetricAccumulator",
    "NaiveForecaster",
    "SeasonalNaiveForecaster",
    "SeqlabForecaster",
    "TimeLLM",
    "all_metrics",
    "create_forecaster",
    "list_forecasters",
    "load_dataset",
    "read_table",
]


def __getattr__(name: str):
    if name == "SeqlabForecaster":  # sktime is optional and heavy: imported on first use
        from seqlab.forecasting.sktime_adapter import SeqlabForecaster

        return SeqlabForecaster
    raise AttributeError(f"module 'seqlab.forecasting' has no attribute {name!r}")
