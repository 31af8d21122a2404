from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ETTH1 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ett" / "ETTh1.csv"


def make_frame(n: int = 480, n_vars: int = 2, freq: str = "h", seed: int = 0) -> pd.DataFrame:
    """A small hourly multivariate series: daily sine per variable plus noise, target column ``OT`` last."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = {f"v{i}": np.sin(2 * np.pi * t / 24 + i) + 0.1 * rng.standard_normal(n) + i for i in range(n_vars - 1)}
    cols["OT"] = np.sin(2 * np.pi * t / 24) * 2 + 0.01 * t + 0.1 * rng.standard_normal(n)
    return pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n, freq=freq), **cols})


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def csv_path(tmp_path, frame) -> Path:
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def etth1() -> Path:
    if not ETTH1.is_file():
        pytest.skip(f"{ETTH1} not present")
    return ETTH1
