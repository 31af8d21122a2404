"""Training throughput of one config on 1 GPU and with DDP on N GPUs, through the seqlab CLI.

Usage (on a machine with >= 2 GPUs):
    python benchmarks/ddp_throughput.py CONFIG --devices 2 [--json out.json] [key=value ...]
Runs `seqlab fit CONFIG trainer.accelerator=gpu trainer.devices=1` and then with `trainer.strategy=ddp
trainer.devices=N`, reads `train_samples_per_s` (all ranks, first epoch skipped) from each run's
metrics.json, prints a table and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def fit(config: str, overrides: list[str], runs: Path) -> dict:
    cmd = [sys.executable, "-m", "seqlab.core.cli", "fit", config, "--run-dir", str(runs),
           "trainer.enable_progress_bar=false", *overrides]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
        raise SystemExit(f"fit failed ({proc.returncode})")
    (metrics_file,) = sorted(runs.rglob("metrics.json"))[-1:]
    return json.loads(metrics_file.read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--json")
    args, overrides = p.parse_known_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, args.devices):
            extra = ["trainer.accelerator=gpu", f"trainer.devices={n}"]
            if n > 1:
                extra.append("trainer.strategy=ddp")
            m = fit(args.config, overrides + extra, Path(tmp) / f"gpus{n}")
            rows.append({"gpus": n, "samples_per_s": m["train_samples_per_s"], "fit_seconds": m["fit_seconds"],
                         "epochs": m["epochs"], **{k: v for k, v in m.items() if k.startswith("test/")
                                                   and k.count("/") == 1}})
    base = rows[0]["samples_per_s"]
    print(f"\n{'GPUs':>4} {'samples/s':>12} {'speed-up':>9} {'fit s':>8}  test metrics")
    for r in rows:
        r["speedup"] = r["samples_per_s"] / base
        tests = ", ".join(f"{k}={v:.4f}" for k, v in r.items() if k.startswith("test/"))
        print(f"{r['gpus']:>4} {r['samples_per_s']:>12.1f} {r['speedup']:>8.2f}x {r['fit_seconds']:>8.1f}  {tests}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "overrides": overrides, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
