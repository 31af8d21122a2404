"""benchmarks/synthetic.py: Zoology's MQAR data layout, the model layout, rows, workers and error capture."""
import json
from dataclasses import asdict

import pytest
import torch
from tests._bench import load_benchmark


S = load_benchmark("synthetic", "bench_synthetic")


def _tiny(**kw):
    cfg = S.Config(**asdict(S.PRESETS["cpu-quick"]))
    cfg.mqar_steps, cfg.mqar_train_examples, cfg.mqar_test_examples, cfg.mqar_eval_every = 4, 64, 32, 2
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_mqar_data_has_zoology_layout():
    n, t, kv, vocab = 300, 64, 8, 512
    x, pos, vals = S.mqar_data(n, t, kv, vocab, 0.01, seed=3)
    assert x.shape == (n, t) and pos.shape == vals.shape == (n, kv)
    keys, ctx_vals = x[:, 0:2 * kv:2], x[:, 1:2 * kv:2]
    assert keys.min() >= 1 and keys.max() < vocab // 2
    assert ctx_vals.min() >= vocab // 2 and ctx_vals.max() < vocab
    for i in range(n):
        assert len(set(keys[i].tolist())) == kv and len(set(ctx_vals[i].tolist())) == kv  # without replacement
        assert len(set(pos[i].tolist())) == kv  # every key queried once, at distinct positions
        table = dict(zip(keys[i].tolist(), ctx_vals[i].tolist()))
        for p, v in zip(pos[i].tolist(), vals[i].tolist()):
            assert p >= 2 * kv and (p - 2 * kv) % 2 == 0 and p <= t - 2
            assert table[x[i, p].item()] == v  # the query token is a key; the label is its value
    # the dense labels are Zoology's: values at the query positions, -100 elsewhere
    y = S.dense_labels(t, pos, vals)
    assert ((y != S.IGNORE).sum(1) == kv).all()
    assert (y.gather(1, pos) == vals).all()


def test_mqar_data_seeded_and_power_law():
    a = S.mqar_data(200, 128, 8, 512, 0.01, seed=0)
    b = S.mqar_data(200, 128, 8, 512, 0.01, seed=0)
    c = S.mqar_data(200, 128, 8, 512, 0.01, seed=10)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # power law a = 0.01: short gaps dominate (uniform gaps would put 1/4 of the queries in the first quarter)
    gaps = (a[1] - 16) // 2
    space = (128 - 16) // 2
    assert (gaps < space // 4).float().mean() > 0.4
    # a = 1 is uniform
    u = (S.mqar_data(400, 128, 8, 512, 1.0, seed=0)[1] - 16) // 2
    assert abs((u < space // 4).float().mean().item() - 0.25) < 0.06


def test_mqar_data_rejects_bad_sizes():
    with pytest.raises(ValueError, match="4 \\* n_kv"):
        S.mqar_data(4, 32, 16, 512, 0.01, seed=0)
    with pytest.raises(ValueError, match="vocab > T"):
        S.mqar_data(4, 64, 4, 64, 0.01, seed=0)


def test_lm_zoology_layout_and_loss_positions():
    torch.manual_seed(0)
    m = S.LM(64, 16, 2, "gla", {"num_heads": 2}, conv_kernel=3, tie=True)
    assert isinstance(m.backbone.layers[0].mixer, S.BaseConv)
    assert type(m.backbone.layers[1].mixer).__name__ == "GatedLinearAttention"
    assert m.head is None
    x = torch.randint(64, (2, 12))
    pos = torch.tensor([[1, 5, 7], [0, 2, 11]])
    full = m(x)
    assert full.shape == (2, 12, 64)
    assert torch.allclose(m(x, pos), full.gather(1, pos[..., None].expand(-1, -1, 64)), atol=1e-6)
    # BaseConv: conv(u) * proj(u) + u, causal
    bc = S.BaseConv(8, 3)
    u = torch.randn(1, 10, 8)
    y1, _ = bc(u)
    u2 = u.clone()
    u2[:, 6:] += 1.0
    y2, _ = bc(u2)
    assert torch.allclose(y1[:, :6], y2[:, :6]) and not torch.allclose(y1[:, 6:], y2[:, 6:])


def test_run_job_mqar_tiny_and_error_capture():
    cfg = _tiny()
    r = S.run_job({"task": "mqar", "row": "attention", "block": "attention", "kwargs": {"causal": True},
                   "lr": 1e-2}, cfg, "cpu", None)
    assert "error" not in r, r
    assert r["steps"] == 4 and 0.0 <= r["accuracy"] <= 1.0 and r["kwargs"]["num_heads"] == 1
    assert r["curve"] and r["curve"][-1][0] == 4
    bad = S.run_job({"task": "mqar", "row": "gla", "block": "gla", "kwargs": {"num_heads": 3}, "lr": 1e-2},
                    cfg, "cpu", None)
    assert "error" in bad and "divisible" in bad["error"]


def test_early_stop_and_time_cap():
    cfg = _tiny(mqar_early_stop=0.0)  # any accuracy stops at the first check
    r = S.run_mqar("lstm", {}, cfg, "cpu", 1e-2, None)
    assert r["stopped_by"] == "early_stop" and r["steps"] == cfg.mqar_eval_every
    cfg = _tiny(mqar_steps=50)
    r = S.run_mqar("lstm", {}, cfg, "cpu", 1e-2, deadline=0.0)  # a deadline in the past: one step, then stop
    assert r["stopped_by"] == "time" and r["steps"] == 1


def test_parallel_workers_collect_results(tmp_path):
    cfg = _tiny()
    jobs = [{"task": "mqar", "row": "lstm", "block": "lstm", "kwargs": {}, "lr": 1e-2},
            {"task": "mqar", "row": "nope", "block": "no_such_block", "kwargs": {}, "lr": 1e-2}]
    got = []
    S.run_parallel(jobs, cfg, "cpu", 2, None, 0.0, 5.0, got.append)
    by = {r["row"]: r for r in got}
    assert set(by) == {"lstm", "nope"}
    assert "error" not in by["lstm"] and by["lstm"]["steps"] == 4
    assert "error" in by["nope"]


def test_best_rows_picks_best_lr():
    rs = [{"task": "mqar", "row": "a", "accuracy": 0.2, "lr": 1e-3}, {"task": "mqar", "row": "a", "accuracy": 0.9,
                                                                       "lr": 3e-3}]
    assert S._best_rows(rs)[("mqar", "a")]["lr"] == 3e-3


def test_cli_in_process_writes_json(tmp_path):
    out = tmp_path / "s.json"
    S.main(["--preset", "cpu-quick", "--tasks", "parity", "--blocks", "lstm,bidirectional", "--steps", "2",
            "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["row"] for r in data["results"]] == ["lstm"]
    assert data["skipped"][0]["row"] == "bidirectional"
    assert data["meta"]["config"]["parity_steps"] == 2
