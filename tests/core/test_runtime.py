import json

import pandas as pd
import torch
from seqlab.core.cli import main
from seqlab.core.config import load_config
from seqlab.core.runtime import build, fit, load_checkpoint


def test_fit_writes_a_complete_run(tmp_path, toy_config, toy_csv, capsys):
    runs = tmp_path / "runs"
    assert main(["fit", str(toy_config), "--run-dir", str(runs), "trainer.max_epochs=20"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = list((runs / "toy").iterdir())
    for name in ("config.yaml", "metrics.csv", "metrics.json", "status.json", "checkpoints/best.ckpt", "weights.txt"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/mse"] < 0.05  # the linear model learns y = x @ [1, -2, .5] + .3
    assert "test/mse" in out and str(run_dir) in out
    saved = (run_dir / "config.yaml").read_text()
    assert "${" not in saved and str(toy_csv) in saved  # resolved
    hist = pd.read_csv(run_dir / "metrics.csv")
    assert "val/loss" in hist.columns


def test_runs_never_overwrite(tmp_path, toy_config, toy_csv):
    cfg = load_config(toy_config, ["trainer.max_epochs=1"])
    a = fit(cfg, "toy", tmp_path).run_dir
    b = fit(cfg, "toy", tmp_path).run_dir
    assert a != b and a.is_dir() and b.is_dir()


def test_test_and_predict_from_checkpoint_and_saved_config(tmp_path, toy_config, toy_csv, capsys):
    runs = tmp_path / "runs"
    assert main(["fit", str(toy_config), "--run-dir", str(runs), "trainer.max_epochs=5"]) == 0
    ckpt = next(runs.rglob("best.ckpt"))
    fit_metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    assert main(["test", "--ckpt", str(ckpt), "--run-dir", str(runs)]) == 0
    test_runs = sorted((runs / "toy").iterdir())
    assert len(test_runs) == 2
    metrics = json.loads((test_runs[-1] / "metrics.json").read_text())
    assert abs(metrics["test/mse"] - fit_metrics["test/mse"]) < 1e-6
    assert main(["predict", str(toy_config), "--ckpt", str(ckpt), "--run-dir", str(runs)]) == 0
    preds = next(runs.rglob("predictions.csv"))
    assert len(pd.read_csv(preds)) == 52


def test_load_checkpoint_restores_weights(tmp_path, toy_config, toy_csv):
    cfg = load_config(toy_config, ["trainer.max_epochs=2"])
    result = fit(cfg, "toy", tmp_path)
    comps = build(cfg)
    load_checkpoint(comps.task, result.best_checkpoint)
    blob = torch.load(result.best_checkpoint, weights_only=False)
    assert torch.equal(comps.model.weight, blob["state_dict"]["model.weight"])


def test_check_and_list(toy_config, toy_csv, capsys):
    assert main(["check", str(toy_config)]) == 0
    assert "ok:" in capsys.readouterr().out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "blocks:" in out and "models:" in out
