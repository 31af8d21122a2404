"""Every shipped YAML under configs/ passes `seqlab check` (instantiated on CPU)."""
from pathlib import Path

import pytest
from seqlab.core.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert (ROOT / "configs" / "forecasting" / "quickstart.yaml") in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS])
def test_config_checks(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
