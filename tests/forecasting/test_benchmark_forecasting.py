"""benchmarks/forecasting.py: the grid it builds, its configs and overrides, and validation-based selection."""

import pytest
from seqlab.core.config import load_config
from tests._bench import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("forecasting", "bench_forecasting")


def test_full_grid_covers_the_issue_and_every_override_resolves(bench, tmp_path):
    args = bench.parse_args(["--data-dir", str(tmp_path)])
    jobs = bench.make_jobs(args)
    uni = [j for j in jobs if j["part"] == "univariate"]
    assert len(uni) == 2 * 4 * len(bench.VARIANTS) * 3
    assert {(j["dataset"], j["horizon"]) for j in uni} == {(d, h) for d in ("etth1", "etth2")
                                                           for h in (168, 336, 720, 1440)}
    multi = [j for j in jobs if j["part"] == "multivariate"]
    models = {j["model"] for j in multi}
    assert {"tpgn", "dlinear", "block_lstm"} <= models
    assert all(sorted(j["horizon"] for j in multi if j["model"] == m) == [96, 192, 336, 720] for m in models)
    # the issue's bar (ETTh1 univariate) and the multivariate TPGN / DLinear rows start first, longest first
    first = jobs[:len(uni) // 2 + 8]
    assert {(j["part"], j["dataset"]) for j in first} == {("univariate", "etth1"), ("multivariate", "etth1")}
    assert not any(j["model"].startswith("block_") for j in first)
    costs = [bench.expected_seconds(j) for j in first]
    assert costs == sorted(costs, reverse=True)
    seen = set()
    for j in jobs:
        key = (j["config"], tuple(o for o in j["overrides"] if not o.startswith(("seed=", "data.pred_len="))))
        if key in seen:
            continue
        seen.add(key)
        cfg = load_config(bench.CONFIGS / j["config"], [*j["overrides"], "data.path=x.csv"])
        assert cfg.data.pred_len == j["horizon"] and cfg.model.pred_len == j["horizon"]
        if j["part"] == "univariate":
            assert cfg.data.split == "ratio" and list(cfg.data.ratios) == [0.6, 0.2, 0.2]
            assert cfg.data.seq_len == 168 and cfg.data.features == "S" and cfg.data.drop_last_train
            assert cfg.seed == j["seed"]
            want_norm = "model.norm=true" in bench.VARIANTS[j["variant"]]
            assert bool(cfg.model.norm) == want_norm
        else:
            assert cfg.data.split == "ett" and cfg.data.seq_len == 96 and cfg.data.features == "M"


def test_quick_mode_is_small(bench, tmp_path):
    args = bench.parse_args(["--quick", "--data-dir", str(tmp_path)])
    jobs = bench.make_jobs(args)
    assert len(jobs) <= 12 and args.accelerator == "cpu"
    assert all("trainer.max_epochs=1" in j["overrides"] for j in jobs)


def _run(variant, horizon, seed, val, test, dataset="etth1"):
    return {"id": 0, "part": "univariate", "model": "tpgn", "variant": variant, "dataset": dataset,
            "horizon": horizon, "seed": seed, "test_mse": test, "test_mae": 0.2, "best_val": val, "best_epoch": 0,
            "epochs": 6, "epoch_s": 1.0, "seasonal_naive_mse": 0.17, "naive_mse": 0.18}


def test_selection_uses_validation_not_test(bench, tmp_path):
    args = bench.parse_args(["--data-dir", str(tmp_path), "--datasets", "etth1", "--uni-horizons", "336",
                             "--seeds", "1,2", "--variants", "authors,norm", "--parts", "univariate"])
    results = [_run("authors", 336, 1, val=0.20, test=0.100), _run("authors", 336, 2, val=0.22, test=0.102),
               _run("norm", 336, 1, val=0.10, test=0.120), _run("norm", 336, 2, val=0.12, test=0.118)]
    summary = bench.summarise(results, args)
    (row,) = summary["univariate"]
    assert row["variant"] == "norm"  # lower validation MSE, although its test MSE is worse
    assert row["test_mse"] == pytest.approx(0.119)
    assert row["gap"] == pytest.approx(0.119 / 0.1110 - 1)
    assert row["within_3pct"] is False
    assert len(summary["univariate_variants"]) == 2


def test_incomplete_seed_sets_are_not_selected(bench, tmp_path):
    args = bench.parse_args(["--data-dir", str(tmp_path), "--datasets", "etth1", "--uni-horizons", "168",
                             "--seeds", "1,2", "--variants", "authors,norm", "--parts", "univariate"])
    results = [_run("authors", 168, 1, val=0.20, test=0.1060), _run("authors", 168, 2, val=0.21, test=0.1062),
               _run("norm", 168, 1, val=0.05, test=0.2)]  # one seed of "norm" missing (e.g. time budget)
    (row,) = bench.summarise(results, args)["univariate"]
    assert row["variant"] == "authors" and row["within_3pct"] is True


def test_best_block_is_chosen_on_validation(bench, tmp_path):
    args = bench.parse_args(["--data-dir", str(tmp_path), "--parts", "multivariate", "--multi-horizons", "96,192"])

    def mv(model, h, val, test):
        return {"id": 0, "part": "multivariate", "model": model, "variant": None, "dataset": "etth1",
                "horizon": h, "seed": None, "test_mse": test, "test_mae": 0.4, "best_val": val, "epochs": 5,
                "epoch_s": 1.0}

    results = [mv("block_a", 96, 0.7, 0.30), mv("block_a", 192, 0.9, 0.31),
               mv("block_b", 96, 0.6, 0.40), mv("block_b", 192, 0.8, 0.41), mv("block_c", 96, 0.1, 0.1)]
    summary = bench.summarise(results, args)
    assert summary["best_block_by_val"] == "block_b"  # block_c lacks a horizon: no average
    assert summary["multivariate"]["block_c"]["avg_mse"] is None
    assert summary["multivariate"]["block_a"]["avg_mse"] == pytest.approx(0.305)
