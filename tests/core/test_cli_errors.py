"""Every bad-input path of the CLI: one line naming the problem, exit code 2, no run left claiming success."""
import json
import subprocess
import sys

import pytest
import torch
from seqlab.core.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def no_successful_run(root):
    for status in root.rglob("status.json"):
        assert json.loads(status.read_text())["status"] != "completed", status


def test_missing_config(capsys, tmp_path):
    code, err = run_cli(capsys, "fit", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "config file not found", "nope.yaml")
    assert not (tmp_path / "runs").exists()


def test_yaml_syntax_error(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  _target_: torch.nn.Linear\n  in_features: [1, 2\n")
    code, err = run_cli(capsys, "fit", str(bad), "--run-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "YAML syntax error", "bad.yaml")


def test_unknown_section(capsys, tmp_path, toy_config, toy_csv):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(toy_config.read_text() + "optimiser: {lr: 1}\n")
    code, err = run_cli(capsys, "check", str(cfg))
    assert_one_line_error(code, err, "unknown top-level section 'optimiser'")


def test_target_outside_allowlist(capsys, tmp_path, toy_config, toy_csv):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(toy_config.read_text().replace("torch.nn.Linear", "os.system"))
    code, err = run_cli(capsys, "fit", str(cfg), "--run-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "'os.system' is not allowed", "model")
    assert not (tmp_path / "runs").exists()


def test_target_that_does_not_exist(capsys, tmp_path, toy_config, toy_csv):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(toy_config.read_text().replace("ToyTask", "NoSuchTask"))
    code, err = run_cli(capsys, "check", str(cfg))
    assert_one_line_error(code, err, "seqlab.tests.core.toy.NoSuchTask", "does not exist")


def test_override_of_unknown_key(capsys, tmp_path, toy_config, toy_csv):
    code, err = run_cli(capsys, "fit", str(toy_config), "task.learning_rate=0.1", "--run-dir", str(tmp_path / "r"))
    assert_one_line_error(code, err, "unknown key 'task.learning_rate'")
    assert not (tmp_path / "r").exists()


def test_missing_data_file(capsys, tmp_path, toy_config, monkeypatch):
    monkeypatch.setenv("TOY_CSV", str(tmp_path / "absent.csv"))
    code, err = run_cli(capsys, "fit", str(toy_config), "--run-dir", str(tmp_path / "runs"))
    assert_one_line_error(code, err, "data file not found", "absent.csv")
    assert not (tmp_path / "runs").exists()


def test_bad_trainer_argument(capsys, tmp_path, toy_config, toy_csv):
    code, err = run_cli(capsys, "check", str(toy_config), "trainer.max_epoch=3")
    assert_one_line_error(code, err, "trainer", "max_epoch")


def test_checkpoint_mismatch(capsys, tmp_path, toy_config, toy_csv):
    runs = tmp_path / "runs"
    assert main(["fit", str(toy_config), "--run-dir", str(runs), "trainer.max_epochs=1"]) == 0
    ckpt = next(runs.rglob("best.ckpt"))
    capsys.readouterr()
    code, err = run_cli(capsys, "test", str(toy_config), "--ckpt", str(ckpt), "model.in_features=5",
                        "--run-dir", str(runs))
    assert_one_line_error(code, err, "does not match the config", "model.weight", "(1, 3)", "(1, 5)")
    code, err = run_cli(capsys, "test", str(toy_config), "--ckpt", str(tmp_path / "gone.ckpt"))
    assert_one_line_error(code, err, "checkpoint not found", "gone.ckpt")
    assert len([p for p in runs.rglob("status.json")]) == 1  # only the fit run


def test_failure_during_fit_marks_run_failed(capsys, tmp_path, toy_config, toy_csv):
    import pandas as pd

    df = pd.read_csv(toy_csv)
    df.loc[5, "x0"] = float("nan")
    df.to_csv(toy_csv, index=False)
    runs = tmp_path / "runs"
    code, err = run_cli(capsys, "fit", str(toy_config), "--run-dir", str(runs))
    assert_one_line_error(code, err, "NaN", "x0")
    no_successful_run(runs)
    assert all(p.name.endswith("-failed") for p in (runs / "toy").iterdir())


def test_console_script_exit_code_and_debug(tmp_path):
    missing = str(tmp_path / "x.yaml")
    proc = subprocess.run([sys.executable, "-m", "seqlab.core.cli", "check", missing], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: config file not found: {missing}"
    proc = subprocess.run([sys.executable, "-m", "seqlab.core.cli", "check", missing, "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate", "x.yaml"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["fit", "c.yaml", "--no-such-flag"])
    assert e.value.code == 2
    code, err = run_cli(capsys, "fit")
    assert_one_line_error(code, err, "needs a CONFIG")


def test_fit_without_config_is_error(capsys):
    code, err = run_cli(capsys, "fit", "trainer.max_epochs=1")
    assert_one_line_error(code, err, "needs a CONFIG")


def test_torch_load_of_garbage_checkpoint(capsys, tmp_path, toy_config, toy_csv):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    code, err = run_cli(capsys, "test", str(toy_config), "--ckpt", str(bad))
    assert_one_line_error(code, err, "cannot read checkpoint", "bad.ckpt")
    torch.save({"weights": 1}, bad)
    code, err = run_cli(capsys, "predict", str(toy_config), "--ckpt", str(bad))
    assert_one_line_error(code, err, "not a Lightning checkpoint")
