"""benchmarks/scan1_walk_sweep.py runs its rows on the CPU (``--smoke``: interpreter, tiny shape, no timing) and
checks each walking row against the look-back kernels; a broken row fails the run."""
import json
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

from tests._bench import load_benchmark  # noqa: E402

P = load_benchmark("scan1_walk_sweep", "bench_scan1_walk_sweep")


def test_cpu_smoke_checks_every_row(tmp_path, monkeypatch):
    out = tmp_path / "walk.json"
    rows = "64,32,1,1,3,4;32,32,1,1,4,8,1;16,16,1,1,2,1"
    monkeypatch.setattr(sys, "argv", ["scan1_walk_sweep.py", "--smoke", "--dtypes", "float32,float16", "--rows", rows,
                                      "--json", str(out)])
    assert P.main() == 0
    got = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in got] == ["look-back", *rows.split(";")] * 2
    assert all(r["ok"] for r in got)
    walk = [r for r in got if r["row"] != "look-back" and r["dtype"] == "float32"]
    assert all(0 <= r["rel_h"] < 1e-5 and r["rel_da"] < 1e-5 and r["rel_db"] < 1e-5 for r in walk)
    for k in ("SEQLAB_SCAN1_WALK", "SEQLAB_SCAN1_WALK_CFG", "SEQLAB_SCAN1_WALK_BWD_CFG", "SEQLAB_SCAN1_WALK_SEGSCAN"):
        assert k not in os.environ, k  # the sweep leaves no flag behind for later tests
