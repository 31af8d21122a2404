"""benchmarks/synthetic.py ``--preset cpu-mqar``: the CPU MQAR table's configuration is valid and runs."""
from dataclasses import asdict, replace
from tests._bench import load_benchmark


S = load_benchmark("synthetic", "bench_synthetic_cpu_mqar")


def test_cpu_mqar_preset_sizes_and_gpu_preset_unchanged():
    cfg = S.PRESETS["cpu-mqar"]
    assert cfg.tasks == ["mqar"] and cfg.d_model == 64 and cfg.mqar_lrs == [1e-3, 3e-3]
    assert cfg.mqar_train_examples >= cfg.mqar_steps * cfg.mqar_batch  # no training example seen twice
    x, pos, vals = S.mqar_data(64, cfg.mqar_len, cfg.mqar_kv, cfg.mqar_vocab, cfg.mqar_power_a, cfg.seed)
    assert x.shape == (64, cfg.mqar_len) and vals.min() >= cfg.mqar_vocab // 2  # chance = 2 / vocab
    gpu = S.PRESETS["gpu"]  # the H200 table's recipe stays as it was
    assert (gpu.d_model, gpu.mqar_len, gpu.mqar_kv, gpu.mqar_vocab, gpu.mqar_steps, gpu.mqar_batch,
            gpu.mqar_lrs) == (128, 256, 16, 8192, 2000, 128, [2e-3, 6e-3])
    g2 = S.PRESETS["gpu-mqar"]  # the third H200 run's recipe: only the steps, lrs and tasks differ from ``gpu``
    assert (g2.mqar_steps, g2.mqar_lrs, g2.tasks) == (4000, [5e-4, 1e-3], ["mqar"])
    assert replace(g2, mqar_steps=gpu.mqar_steps, mqar_lrs=gpu.mqar_lrs, tasks=gpu.tasks) == gpu


def test_cpu_mqar_preset_runs_a_few_steps_per_recurrent_row():
    cfg = replace(S.Config(**asdict(S.PRESETS["cpu-mqar"])), mqar_steps=2, mqar_eval_every=2,
                  mqar_train_examples=128, mqar_test_examples=32)
    rows = S.block_variants(cfg)
    for row in ("mamba", "gla", "lstm"):
        block, kw = rows[row]
        r = S.run_job({"task": "mqar", "row": row, "block": block, "kwargs": kw, "lr": cfg.mqar_lrs[0]}, cfg,
                      "cpu", None)
        assert "error" not in r, r
        assert r["steps"] == 2 and r["planned_steps"] == 2
