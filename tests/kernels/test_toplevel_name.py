"""A bare ``import kernels`` from a checkout reaches the package that owns the name, not our folders.

transformers >= 5.25 imports Hugging Face's ``kernels`` package whenever ``find_spec("kernels")`` succeeds; from
the repo root (or with ``benchmarks/`` on sys.path) that used to find ``kernels/`` (or ``benchmarks/kernels.py``)
and fail. A fake ``kernels`` package later on ``sys.path`` stands in for Hugging Face's here.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, cwd: Path, extra_path: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def hub_kernels(tmp_path):
    pkg = tmp_path / "site" / "kernels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("FAKE_HUB = True\n")
    return tmp_path / "site"


@pytest.mark.parametrize("cwd", ["root", "benchmarks"])
def test_bare_import_reaches_the_later_package(cwd, hub_kernels):
    where = ROOT if cwd == "root" else ROOT / "benchmarks"
    code = ("import sys, kernels; assert sys.path[0] == '', sys.path[0]; print(kernels.FAKE_HUB); "
            "import seqlab.kernels as sk; print(callable(sk.scan1), sys.modules['kernels'] is kernels)")
    p = _python(code, where, hub_kernels)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", "True", "True"]


def test_bare_import_without_another_package_is_a_clear_module_not_found():
    p = _python("import kernels", ROOT, None)
    assert p.returncode != 0
    assert "ModuleNotFoundError" in p.stderr and "import seqlab.kernels instead" in p.stderr, p.stderr[-2000:]
