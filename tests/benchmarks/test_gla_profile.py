"""benchmarks/gla_profile.py runs on the CPU (tiny shape, PyTorch path) and writes fwd and fwd+bwd tables."""
import json
import sys

from tests._bench import load_benchmark

P = load_benchmark("gla_profile", "bench_gla_profile")


def test_cpu_smoke_writes_both_tables(tmp_path, monkeypatch):
    out = tmp_path / "prof.json"
    monkeypatch.setattr(sys, "argv", ["gla_profile.py", "--json", str(out)])
    assert P.main() == 0
    tables = json.loads(out.read_text())["tables"]
    assert set(tables) == {"seqlab gla fwd", "seqlab gla fwd+bwd"}
    for rows in tables.values():
        assert rows and all(r["us_per_step"] > 0 and r["calls"] >= 1 for r in rows)
    # the backward adds work: its table has an autograd backward node the forward's lacks
    assert any("Backward" in r["kernel"] for r in tables["seqlab gla fwd+bwd"])
    assert not any("Backward" in r["kernel"] for r in tables["seqlab gla fwd"])
