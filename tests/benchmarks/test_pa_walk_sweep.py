"""benchmarks/pa_walk_sweep.py runs its rows on the CPU (``--smoke``: interpreter, tiny shape, no timing) and checks
each walking row's ``o`` and ``lse`` against the default forward's; a broken row fails the run."""
import json
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

from tests._bench import load_benchmark  # noqa: E402

P = load_benchmark("pa_walk_sweep", "bench_pa_walk_sweep")


def test_cpu_smoke_checks_every_row(tmp_path, monkeypatch):
    out = tmp_path / "pa_walk.json"
    rows = "fused 64,8,4,1,8,4;fused 128,4,4,1,4,8,1;1 64,8,2,1,8,4;env SEQLAB_PREFIX_ATTN_SCAN_LSE=inline"
    monkeypatch.setattr(sys, "argv", ["pa_walk_sweep.py", "--smoke", "--dtype", "float32", "--rows", rows,
                                      "--json", str(out)])
    assert P.main() == 0
    got = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in got] == ["default", *rows.split(";")]
    assert all(r["ok"] and 0 <= r["rel_o"] < 1e-5 and r["rel_lse"] < 1e-5 for r in got)
    for k in (*P.FLAGS, "SEQLAB_PREFIX_ATTN_SCAN_LSE"):
        assert k not in os.environ, k  # the sweep leaves no flag behind for later tests


def test_a_bad_row_is_reported_and_fails_the_run(tmp_path, monkeypatch):
    out = tmp_path / "pa_walk.json"
    monkeypatch.setattr(sys, "argv", ["pa_walk_sweep.py", "--smoke", "--dtype", "float32", "--rows",
                                      "fused 64,8,4,1,8;env PATH=/", "--json", str(out)])
    assert P.main() == 1
    got = json.loads(out.read_text())["rows"]
    assert got[-2]["row"] == "fused 64,8,4,1,8" and not got[-2]["ok"] and "CT,BC,VEC" in got[-2]["error"]
    assert got[-1]["row"] == "env PATH=/" and not got[-1]["ok"] and "SEQLAB_" in got[-1]["error"]
