"""benchmarks/forecasting.py: opt-in TPGN settings (epoch cap, patience, lr) and the drop-last test diagnostic."""

import pytest
import torch
from seqlab.core.config import load_config
from seqlab.core.runtime import run as rt

from tests._bench import load_benchmark

from .conftest import make_frame


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("forecasting", "bench_forecasting_long")


def test_opt_in_variants_resolve_and_stay_out_of_the_default_grid(bench, tmp_path):
    default = bench.parse_args(["--data-dir", str(tmp_path)])
    assert not set(bench.EXTRA_VARIANTS) & set(default.variants)
    args = bench.parse_args(["--data-dir", str(tmp_path), "--parts", "univariate", "--datasets", "etth1",
                             "--uni-horizons", "1440", "--variants", "norm_lr1e-4," + ",".join(bench.EXTRA_VARIANTS)])
    jobs = bench.make_jobs(args)
    assert len(jobs) == (1 + len(bench.EXTRA_VARIANTS)) * 3
    cfgs = {j["variant"]: load_config(bench.CONFIGS / j["config"], [*j["overrides"], "data.path=x.csv"])
            for j in jobs}
    want = {"norm_lr1e-4": (1e-4, 25, 5), "norm_lr1e-4_ep50": (1e-4, 50, 5), "norm_lr5e-4": (5e-4, 25, 5),
            "norm_lr3e-4": (3e-4, 25, 5), "norm_lr2e-4": (2e-4, 25, 5),
            "norm_lr1e-4_ep50_p10": (1e-4, 50, 10)}
    assert set(cfgs) == set(want)
    for v, (lr, epochs, patience) in want.items():
        c = cfgs[v]
        assert c.model.norm and c.task.lr == pytest.approx(lr) and c.task.lr_schedule == "type4"
        assert c.trainer.max_epochs == epochs and c.task.patience == patience and c.data.pred_len == 1440
    # --epochs still overrides every run, the opt-in caps included
    capped = bench.make_jobs(bench.parse_args(["--data-dir", str(tmp_path), "--parts", "univariate",
                                               "--variants", "norm_lr1e-4_ep50", "--epochs", "3"]))
    cfg = load_config(bench.CONFIGS / capped[0]["config"], [*capped[0]["overrides"], "data.path=x.csv"])
    assert cfg.trainer.max_epochs == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--data-dir", str(tmp_path), "--variants", "nope"])


def test_drop_last_diagnostic_scores_whole_batches_only(bench, tmp_path):
    path = tmp_path / "series.csv"
    make_frame(n=1200, n_vars=2).to_csv(path, index=False)
    ov = ["data.pred_len=48", f"data.path={path}", "seed=0"]
    cfg = load_config(bench.CONFIGS / "tpgn_etth1_univariate.yaml", ov)
    comps = rt.build(cfg)
    ckpt = tmp_path / "best.ckpt"
    torch.save({"state_dict": comps.task.state_dict()}, ckpt)
    dm, task = comps.data, comps.task.eval()
    dm.setup("test")
    ds = dm.test_dataloader().dataset
    assert len(ds) % 32  # an incomplete last batch exists
    with torch.no_grad():
        x = torch.stack([ds[i]["x"] for i in range(len(ds))])
        xm = torch.stack([ds[i]["x_mark"] for i in range(len(ds))])
        y = torch.stack([ds[i]["y"] for i in range(len(ds))])
        err = ((task(x, xm) - y) ** 2).mean(dim=(1, 2))
    keep = len(ds) // 32 * 32
    assert bench._test_mse_drop_last(cfg, ckpt) == pytest.approx(float(err[:keep].mean()), rel=1e-5)
    every = load_config(bench.CONFIGS / "tpgn_etth1_univariate.yaml", [*ov, "data.batch_size=1"])
    assert bench._test_mse_drop_last(every, ckpt) == pytest.approx(float(err.mean()), rel=1e-5)


def _run(variant, seed, val, test):
    return {"id": 0, "part": "univariate", "model": "tpgn", "variant": variant, "dataset": "etth1", "horizon": 1440,
            "seed": seed, "test_mse": test, "test_mae": 0.3, "best_val": val, "best_epoch": 1, "epochs": 7,
            "epoch_s": 1.0, "seasonal_naive_mse": 0.2, "naive_mse": 0.2, "wall_s": 1.0}


def test_summarise_merges_json_files_and_selects_on_validation(bench, tmp_path, capsys):
    import json

    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "merged.json"
    a.write_text(json.dumps({"runs": [_run("norm_lr1e-4", s, 0.109, 0.140) for s in (1, 2, 3)]}))
    b.write_text(json.dumps({"runs": [_run("norm_lr1e-4", 1, 0.5, 0.5)]  # a duplicate: the first copy wins
                             + [_run("norm_lr5e-4", s, 0.108, 0.136) for s in (1, 2, 3)]
                             + [_run("norm_lr2e-4", 1, 0.100, 0.100)]  # one seed only: reported, not selectable
                             + [{**_run("norm_lr3e-4", 1, 0.1, 0.1), "error": "boom"}]}))
    assert bench.main(["--summarise", f"{a},{b}", "--json", str(out)]) == 1  # one failed run
    summary = json.loads(out.read_text())["summary"]
    (row,) = summary["univariate"]
    assert row["variant"] == "norm_lr5e-4" and row["test_mse"] == pytest.approx(0.136)
    rows = {r["variant"]: r for r in summary["univariate_variants"]}
    assert rows["norm_lr1e-4"]["test_mse"] == pytest.approx(0.140) and rows["norm_lr1e-4"]["n"] == 3
    assert rows["norm_lr2e-4"]["n"] == 1 and "norm_lr3e-4" not in rows and len(summary["failed"]) == 1
    assert "norm_lr5e-4" in capsys.readouterr().out
