import json
from pathlib import Path

from seqlab.core.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_cli_writes_metrics_and_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["fit", str(ROOT / "configs/forecasting/quickstart.yaml"), "trainer.max_epochs=1",
                 "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
                 "--run-dir", str(tmp_path)])
    assert code == 0
    (run,) = [p for p in tmp_path.rglob("forecast.png")]
    metrics = json.loads((run.parent / "test_metrics.json").read_text())
    assert {"mse", "mae", "orig_mse", "seasonal_naive_mse", "seasonal_naive_mae"} <= set(metrics)
    assert metrics["seasonal_naive_mse"] > 0
