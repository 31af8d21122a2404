"""A bare ``import kernels`` from a checkout reaches the package that owns the name, not our folders.

transformers imports a ``kernels`` module whenever ``find_spec("kernels")`` succeeds (>= 5.25: Hugging Face's
package, a dependency); from the repo root or with ``benchmarks/`` on sys.path that used to find ``kernels/`` or
``benchmarks/kernels.py``. A fake ``kernels`` package later on ``sys.path`` stands in for Hugging Face's here.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


# Hide the installed packages (transformers >= 5.25 installs Hugging Face's ``kernels`` there) once torch and
# seqlab are loaded, so that a test can see what the bare import does when no other ``kernels`` exists.
NO_SITE = "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p and 'dist-packages' not in p]; "


def _python(code: str, cwd: Path, extra_path: list[Path]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(map(str, extra_path))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def hub_kernels(tmp_path):
    pkg = tmp_path / "site" / "kernels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("FAKE_HUB = True\n")
    return tmp_path / "site"


# (working directory, our folders put on sys.path ahead of the fake): the root, benchmarks/, and both (as in a
# pytest run that has loaded a benchmark script), in either order
PLACES = [(ROOT, []), (BENCH, []), (ROOT, [BENCH]), (BENCH, [ROOT])]


@pytest.mark.parametrize("cwd,ours", PLACES)
def test_bare_import_reaches_the_later_package(cwd, ours, hub_kernels):
    code = ("import sys, kernels; print(kernels.FAKE_HUB); "
            "import seqlab.kernels as sk; print(callable(sk.scan1), sys.modules['kernels'] is kernels)")
    p = _python(code, cwd, ours + [hub_kernels])
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", "True", "True"]


@pytest.mark.parametrize("cwd,ours", PLACES)
def test_bare_import_without_another_package_is_seqlab_kernels(cwd, ours):
    """What the bare import gave before (transformers < 5.25 then reads no version from it), with no recursion
    between our two files."""
    code = "import seqlab.kernels as sk; " + NO_SITE + "import kernels; print(kernels is sk, callable(kernels.scan1))"
    p = _python(code, cwd, ours)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("with_hub", [False, True])
def test_symlinked_package_as_on_the_gpu_machine(tmp_path, with_hub, hub_kernels):
    """``benchmarks/device_env.sh`` exposes the checkout as ``/tmp/sl/seqlab/<folder>`` symlinks; a benchmark run
    from the root then has ``benchmarks/`` first on sys.path. The hand-over must still see ``benchmarks/kernels.py``
    as ours (a path test on the symlinked name recursed there: RecursionError in every benchmark, first device call
    of the sixth session of 2026-12-03)."""
    sl = tmp_path / "sl" / "seqlab"
    sl.mkdir(parents=True)
    for d in ("core", "kernels"):
        (sl / d).symlink_to(ROOT / d)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "sl")] + ([str(hub_kernels)] if with_hub else []))
    code = ("import seqlab.kernels as sk; " + (NO_SITE if not with_hub else "") + "import kernels; "
            "print(getattr(kernels, 'FAKE_HUB', False), kernels is sk, sk.__file__.startswith(%r))" % str(sl))
    # run as a script from benchmarks/ so that benchmarks/ is sys.path[0], as `python3 benchmarks/x.py` does
    bench_copy = BENCH / "_probe_toplevel.py"
    bench_copy.write_text(code)
    try:
        p = subprocess.run([sys.executable, str(bench_copy)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    finally:
        bench_copy.unlink()
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == (["True", "False", "True"] if with_hub else ["False", "True", "True"])


def test_foreign_package_in_a_virtualenv_inside_the_checkout(tmp_path):
    """``make`` puts its ``.venv`` inside the checkout, so Hugging Face's ``kernels`` lives under the repo root
    there. It is not one of ours and must be reached (a path test on the whole checkout aliased seqlab.kernels
    instead, and transformers 5.25 failed: 6 Time-LLM tests of a fresh-clone ``make test``, sixth session)."""
    site = ROOT / ".probe_venv_site"
    pkg = site / "kernels"
    pkg.mkdir(parents=True, exist_ok=False)
    try:
        (pkg / "__init__.py").write_text("FAKE_HUB = True\n")
        p = _python("import kernels; print(getattr(kernels, 'FAKE_HUB', False))", ROOT, [site])
    finally:
        (pkg / "__init__.py").unlink()
        pkg.rmdir()
        site.rmdir()
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["True"]
