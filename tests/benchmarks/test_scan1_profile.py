"""benchmarks/scan1_profile.py runs on the CPU (tiny shape) and writes a kernel table per config."""
import json
import sys

from tests._bench import load_benchmark

P = load_benchmark("scan1_profile", "bench_scan1_profile")


def test_cpu_smoke_writes_a_table(tmp_path, monkeypatch):
    out = tmp_path / "prof.json"
    monkeypatch.setattr(sys, "argv", ["scan1_profile.py", "--json", str(out)])
    assert P.main() == 0
    tables = json.loads(out.read_text())["tables"]
    rows = tables["default float32"]
    assert rows and all(r["us_per_step"] > 0 for r in rows)
    assert any("scan1" in r["kernel"] for r in rows)  # the op itself is in the profile
