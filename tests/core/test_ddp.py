"""Scale-out is Lightning's: a 2-process DDP fit on CPU (gloo) through the CLI."""
import json
import os
import subprocess
import sys

import torch


def test_ddp_two_processes_on_cpu(tmp_path, toy_config, toy_csv):
    runs = tmp_path / "runs"
    env = {**os.environ, "TOY_CSV": str(toy_csv)}
    env.pop("SEQLAB_RUN_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab.core.cli", "fit", str(toy_config), "--run-dir", str(runs),
         "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=2"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list((runs / "toy").iterdir())
    assert (run_dir / "rank0.done").read_text() == "2"
    assert (run_dir / "rank1.done").read_text() == "2"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    blob = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=False)
    assert blob["state_dict"]["model.weight"].shape == (1, 3)
