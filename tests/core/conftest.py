from pathlib import Path

import pytest
from seqlab.tests.core.toy import write_csv

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def toy_csv(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "toy.csv")
    monkeypatch.setenv("TOY_CSV", str(path))
    monkeypatch.delenv("SEQLAB_RUN_DIR", raising=False)
    return path


@pytest.fixture
def toy_config():
    return FIXTURES / "toy.yaml"
