"""SASRec on MovieLens-100K: our variants vs RecBole 1.2.1's SASRec, same leave-one-out split, same protocol.

Runs (CPU by default; ml-100k is small) each of our variants for every seed through the library path
(``RecsysDataModule`` + ``SASRec`` + ``RecsysTask`` + ``lightning.Trainer``; best validation checkpoint by
``val/full/NDCG@10``, then test), and RecBole's own SASRec in a separate Python (``--recbole-python``, a venv holding
torch + recbole 1.2.1) through a subprocess. RecBole gets the exact same chronological order: the benchmark writes
our ordered sequences as a RecBole atomic file whose timestamp is the position within the user, so RecBole's
leave-one-out (``LS: valid_and_test``, ``order: TO``) picks the same validation and test items, and its full-sort
evaluation masks the same history. Prints a table; ``--json PATH`` writes all figures.

Example:
    python benchmarks/recsys.py --seeds 0 1 2 --json /tmp/recsys.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

VARIANTS = {  # name: (model kwargs, task kwargs, data kwargs)
    "sasrec-bce": ({}, {"loss": "bce"}, {"num_negatives": 1}),
    "sasrec-ce": ({}, {"loss": "ce"}, {"num_negatives": 0}),
    "sasrec-gbce": ({}, {"loss": "gbce", "gbce_t": 0.75}, {"num_negatives": 16}),
    "mamba-bce": ({"encoder": "mamba"}, {"loss": "bce"}, {"num_negatives": 1}),
    "gla-bce": ({"encoder": "gla", "encoder_kwargs": {"num_heads": 1}}, {"loss": "bce"}, {"num_negatives": 1}),
    "mamba-ce": ({"encoder": "mamba"}, {"loss": "ce"}, {"num_negatives": 0}),
    "gla-ce": ({"encoder": "gla", "encoder_kwargs": {"num_heads": 1}}, {"loss": "ce"}, {"num_negatives": 0}),
}
REPORT = ("test/full/NDCG@10", "test/full/HR@10", "test/sampled/NDCG@10", "test/sampled/HR@10")


def run_ours(variant: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one variant with one seed; return test metrics and seconds per training epoch."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from seqlab.recsys import SASRec
    from seqlab.recsys.data.datamodule import RecsysDataModule
    from seqlab.recsys.task import RecsysTask

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.times.append(time.perf_counter() - self.t0)

    model_kw, task_kw, data_kw = VARIANTS[variant]
    L.seed_everything(seed, verbose=False)
    dm = RecsysDataModule(path=args.data, max_len=args.max_len, batch_size=args.batch_size, seed=0, **data_kw)
    model = SASRec(dm.num_items, d_model=args.d_model, num_blocks=2, max_len=args.max_len, dropout=args.dropout,
                   **model_kw)
    task = RecsysTask(model, lr=1e-3, betas=(0.9, 0.98), **task_kw)
    epochs = args.epochs_ce if task_kw["loss"] == "ce" else args.epochs
    if model_kw.get("encoder"):
        epochs = min(epochs, args.epochs_backbone)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as ckdir:
        ckpt = ModelCheckpoint(dirpath=ckdir, monitor="val/full/NDCG@10", mode="max")
        trainer = L.Trainer(max_epochs=epochs, accelerator=args.accelerator, devices=1, logger=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[ckpt, timer],
                            check_val_every_n_epoch=args.val_every, num_sanity_val_steps=0)
        trainer.fit(task, dm)
        res = trainer.test(task, dm, ckpt_path="best", verbose=False)[0]
    out = {k: float(v) for k, v in res.items()}
    out.update(epochs=epochs, sec_per_epoch=statistics.median(timer.times), best_epoch_score=float(ckpt.best_model_score),
               threads=torch.get_num_threads())
    return out


RECBOLE_WRAPPER = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    # RecBole 1.2.1 reads aliases NumPy 2 removed (np.float_, np.complex_, np.unicode_, np.float, ...):
    # restored here in the subprocess, RecBole's files are untouched
    for _name, _t in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_),
                      ("float", float), ("int", int), ("bool", bool), ("long", int)):
        if _name not in np.__dict__:
            setattr(np, _name, _t)
    import torch
    _load = torch.load
    torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})  # RecBole checkpoints hold a Config
    torch.set_num_threads(int(sys.argv[3]))
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed
    cfg = json.loads(sys.argv[1])
    config = Config(model="SASRec", dataset=cfg.pop("dataset"), config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    times = []
    _epoch = trainer._train_epoch
    def timed(*a, **k):
        t0 = time.perf_counter(); r = _epoch(*a, **k); times.append(time.perf_counter() - t0); return r
    trainer._train_epoch = timed
    trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False)
    res = dict(trainer.evaluate(test_data, load_best_model=True, show_progress=False))
    print("RECBOLE_RESULT " + json.dumps({"test": {k: float(v) for k, v in res.items()}, "epoch_times": times,
          "users": dataset.user_num - 1, "items": dataset.item_num - 1}))
''')


def write_recbole_atomic(args: argparse.Namespace, root: Path) -> str:
    """Write our chronological sequences as ``root/<name>/<name>.inter`` with position-as-timestamp."""
    from seqlab.recsys.data import leave_one_out, read_interactions, recbole_ml100k_path

    split = leave_one_out(read_interactions(args.data or recbole_ml100k_path()))
    name = "seqlab_split"
    (root / name).mkdir(parents=True, exist_ok=True)
    with open(root / name / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, seq in zip(split.users, split.sequences):
            f.writelines(f"{u}\t{split.items[i - 1]}\t{pos}\n" for pos, i in enumerate(seq))
    return name


def run_recbole(seed: int, args: argparse.Namespace, root: Path, name: str) -> dict:
    """RecBole 1.2.1 SASRec with its default hyperparameters, full-sort evaluation, same split."""
    cfg = {
        "dataset": name, "data_path": str(root), "seed": seed, "reproducibility": True, "device": "cpu",
        "use_gpu": False, "checkpoint_dir": str(root / f"saved-{seed}"), "show_progress": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10", "epochs": args.recbole_epochs,
        "stopping_step": 10, "MAX_ITEM_LIST_LENGTH": args.max_len, "train_neg_sample_args": None,
        "loss_type": "CE", "eval_step": args.val_every, "log_wandb": False,
    }
    if args.recbole_paper_hparams:  # the paper's SASRec sizes, as our runs use; otherwise RecBole's defaults
        cfg.update({"hidden_size": args.d_model, "inner_size": args.d_model, "n_layers": 2, "n_heads": 1,
                    "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.dropout, "hidden_act": "relu",
                    "learning_rate": 1e-3, "train_batch_size": args.batch_size})
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([args.recbole_python, "-c", RECBOLE_WRAPPER, json.dumps(cfg), str(seed), str(args.threads)],
                          capture_output=True, text=True, env=env, cwd=root, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RECBOLE_RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"RecBole run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    r = json.loads(line.split(" ", 1)[1])
    return {"test/full/NDCG@10": r["test"]["ndcg@10"], "test/full/HR@10": r["test"]["hit@10"],
            "sec_per_epoch": statistics.median(r["epoch_times"]), "epochs": len(r["epoch_times"]),
            "users": r["users"], "items": r["items"]}


def summarize(runs: list[dict]) -> dict:
    keys = [k for k in (*REPORT, "sec_per_epoch", "epochs") if all(k in r for r in runs)]
    return {k: {"mean": statistics.mean(r[k] for r in runs),
                "std": statistics.pstdev(r[k] for r in runs) if len(runs) > 1 else 0.0} for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="*", default=["sasrec-bce", "sasrec-ce", "gla-ce", "mamba-ce"],
                   choices=sorted(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--data", default=None, help="interaction file (default: ml-100k from the RecBole wheel)")
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--d-model", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=200, help="epochs of the sampled-negative losses")
    p.add_argument("--epochs-ce", type=int, default=50, help="epochs of the full-softmax CE variants")
    p.add_argument("--epochs-backbone", type=int, default=10,
                   help="epoch cap for core-block encoders (their CPU reference paths are slow)")
    p.add_argument("--val-every", type=int, default=5)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--recbole-python", default="/tmp/recbole-venv/bin/python",
                   help="python of a venv with torch + recbole==1.2.1 ('' skips the peer)")
    p.add_argument("--recbole-epochs", type=int, default=50)
    p.add_argument("--recbole-paper-hparams", action="store_true",
                   help="RecBole SASRec with d, dropout, batch size of our runs, 1 head, FFN width d, ReLU")
    p.add_argument("--recbole-seeds", nargs="*", type=int, default=None, help="default: --seeds")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {"config": vars(args), "runs": {}, "summary": {}}

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))

    for variant in args.variants:
        runs = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            r = run_ours(variant, seed, args)
            r["wall_s"] = time.perf_counter() - t0
            runs.append(r)
            print(f"{variant} seed {seed}: " + " ".join(f"{k}={r[k]:.4f}" for k in REPORT)
                  + f" s/epoch={r['sec_per_epoch']:.2f} wall={r['wall_s']:.0f}s", flush=True)
        results["runs"][variant], results["summary"][variant] = runs, summarize(runs)
        save()
    if args.recbole_python:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            name = write_recbole_atomic(args, root)
            runs = []
            for seed in args.seeds if args.recbole_seeds is None else args.recbole_seeds:
                t0 = time.perf_counter()
                r = run_recbole(seed, args, root, name)
                r["wall_s"] = time.perf_counter() - t0
                runs.append(r)
                print(f"recbole-sasrec seed {seed}: NDCG@10={r['test/full/NDCG@10']:.4f} "
                      f"HR@10={r['test/full/HR@10']:.4f} s/epoch={r['sec_per_epoch']:.2f} epochs={r['epochs']}",
                      flush=True)
            results["runs"]["recbole-sasrec"], results["summary"]["recbole-sasrec"] = runs, summarize(runs)
        save()

    print(f"\n{'model':<16}" + "".join(f"{k.removeprefix('test/'):>20}" for k in REPORT) + f"{'s/epoch':>10}{'epochs':>8}")
    for name, s in results["summary"].items():
        cells = "".join(f"{s[k]['mean']:>12.4f} ±{s[k]['std']:.4f}" if k in s else f"{'-':>20}" for k in REPORT)
        print(f"{name:<16}{cells}{s['sec_per_epoch']['mean']:>10.2f}{s['epochs']['mean']:>8.0f}")
    save()


if __name__ == "__main__":
    main()
