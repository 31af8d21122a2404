"""seqlab.forecasting: TPGN, baselines and any-block forecasters on real time series, from YAML or Python."""
from seqlab.forecasting.data import ForecastingDataModule, load_dataset, read_table
from seqlab.forecasting.metrics import MetricAccumulator, all_metrics
from seqlab.forecasting.models import (
    TPGN,
    BlockForecaster,
    DLinear,
    NaiveForecaster,
    SeasonalNaiveForecaster,
    create_forecaster,
    list_forecasters,
)
from seqlab.forecasting.task import ForecastingTask

__all__ = [
    "TPGN",
    "BlockForecaster",
    "DLinear",
    "ForecastingDataModule",
    "ForecastingTask",
    "MetricAccumulator",
    "NaiveForecaster",
    "SeasonalNaiveForecaster",
    "all_metrics",
    "create_forecaster",
    "list_forecasters",
    "load_dataset",
    "read_table",
]
