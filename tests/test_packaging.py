"""The wheel holds every sub-package and every config."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("core", "kernels", "forecasting", "vision", "audio", "recsys", "graphs", "configs", "tests")


def test_wheel_contains_all_packages_and_configs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("seqlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in TOP:
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = "seqlab/" + init.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} missing from the wheel"
    for cfg in (ROOT / "configs").rglob("*.yaml"):
        rel = "seqlab/" + cfg.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} missing from the wheel"
    assert any(n.endswith("entry_points.txt") and "seqlab" in n for n in names)


def test_every_code_folder_is_a_package():
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            assert (path.parent / "__init__.py").is_file(), f"{path.parent} lacks __init__.py (not packaged)"
