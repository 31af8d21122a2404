"""SASRec on MovieLens-100K: our variants vs RecBole 1.2.1's own SASRec, same leave-one-out split, same protocols.

One script gives every figure of the recsys results table:

* ours (library path: ``RecsysDataModule`` + ``SASRec`` + ``RecsysTask`` + ``lightning.Trainer``): SASRec with the
  paper's BCE (one sampled negative), SASRec with full-softmax CE, and the SASRec body with a ``mamba`` or ``gla``
  core block in place of attention (CE). Paper settings (Kang & McAuley 2018, Sec. IV-B; kang205/SASRec
  ``main.py`` defaults for ml-1m): d=50, 2 blocks, 1 head, maxlen 200, dropout 0.2, Adam(1e-3, beta2 0.98),
  batch 128. Trained until validation ``full`` NDCG@10 stops improving (``--patience`` validations), then the best
  validation checkpoint is tested.
* RecBole 1.2.1's ``SASRec`` with RecBole's ``Trainer`` (its own early stopping: ``stopping_step`` validations
  without improvement of ``valid_metric``, here NDCG@10), in two configurations: ``recbole-default`` (RecBole's
  ``properties/model/SASRec.yaml`` + ``overall.yaml``: hidden 64, 2 heads, FFN 256, GELU, dropout 0.5, batch 2048,
  CE) and ``recbole-paper`` (the paper's sizes, as ours). Both with ``MAX_ITEM_LIST_LENGTH`` = our maxlen.

Same split: the benchmark writes our chronological sequences as a RecBole atomic file whose timestamp is the
position within the user, so RecBole's leave-one-out (``LS: valid_and_test``, ``order: TO``) selects the same
validation and test items (checked: every RecBole test target and the last item of its input must equal ours).
Same protocols: RecBole's sequential full-sort evaluation does **not** mask seen items (``repeatable: True``;
``FullSortEvalDataLoader`` passes no history index for sequential models), so its native figure is reported as
such, and the best RecBole model's scores over all items are also dumped and ranked by *our* metric code with our
masks and our fixed 100 sampled negatives: the ``full``/``sampled`` columns are the same computation for both.

Each (model, seed) runs as its own process (``--workers`` at a time, longest first; RecBole is imported only in
RecBole processes). Training seconds per epoch are measured twice: in the parallel grid (contended) and in a
short timing phase that runs ours and RecBole alone, one after the other, before the grid.

Examples:
    python benchmarks/recsys.py --quick --json /tmp/recsys_quick.json            # CPU smoke, < 2 minutes
    # everything, ~8 minutes on one H100 + 16 cores (RecBole is stopped by the budget, marked time_cap)
    source benchmarks/device_env.sh && python3 benchmarks/recsys.py --workers 18 --json $OUT/recsys.json
    # RecBole alone, 3 seeds, more time for its early stopping (not run yet)
    source benchmarks/device_env.sh && python3 benchmarks/recsys.py --variants --timing-epochs 0 --workers 3 \
        --budget-s 450 --json $OUT/recsys_recbole.json
RecBole's imports need colorlog and texttable beyond the device image (``.whl/``); elsewhere point
``--recbole-path`` at a folder holding recbole 1.2.1 and those (``pip install --no-deps --target DIR ...``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
# RecBole configurations on top of RecBole's own defaults (properties/overall.yaml + properties/model/SASRec.yaml)
RECBOLE_CONFIGS = {
    "recbole-default": {},
    "recbole-paper": {"hidden_size": 50, "inner_size": 50, "n_layers": 2, "n_heads": 1, "hidden_dropout_prob": 0.2,
                      "attn_dropout_prob": 0.2, "hidden_act": "relu", "learning_rate": 1e-3,
                      "train_batch_size": 128},
}
# RecBole config values reported with its figures (as RecBole resolved them)
RECBOLE_REPORT_KEYS = ("hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob",
                       "hidden_act", "layer_norm_eps", "initializer_range", "loss_type", "learner", "learning_rate",
                       "weight_decay", "train_batch_size", "epochs", "stopping_step", "eval_step", "valid_metric",
                       "MAX_ITEM_LIST_LENGTH", "eval_args", "repeatable", "train_neg_sample_args", "seed")
REPORT = ("test/full/NDCG@10", "test/full/HR@10", "test/sampled/NDCG@10", "test/sampled/HR@10")
HERE = Path(__file__).resolve()


# --------------------------------------------------------------------------------------------------------- data
def make_data(args: argparse.Namespace, root: Path) -> tuple[str, str]:
    """Write the interaction file ours reads and the RecBole atomic copy of the same split; return their paths.

    ``--quick`` keeps the first ``--quick-users`` users (raw-id order) of the input so the smoke run is small.
    """
    from seqlab.recsys.data import leave_one_out, read_interactions, recbole_ml100k_path

    src = Path(args.data) if args.data else recbole_ml100k_path()
    df = read_interactions(src)
    if args.quick:
        keep = sorted(df["user"].unique(), key=lambda u: (len(u), u))[: args.quick_users]
        df = df[df["user"].isin(keep)]
    ours = root / "interactions.csv"
    df[["user", "item", "timestamp"]].to_csv(ours, index=False)
    split = leave_one_out(df)
    name = "seqlab_split"
    (root / name).mkdir(parents=True, exist_ok=True)
    with open(root / name / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, seq in zip(split.users, split.sequences):
            f.writelines(f"{u}\t{split.items[i - 1]}\t{pos}\n" for pos, i in enumerate(seq))
    return str(ours), str(root / name)


# ------------------------------------------------------------------------------------------------------- ours
def job_ours(job: dict) -> dict:
    """Train one of our variants with one seed; early stopping on val/full/NDCG@10; test the best checkpoint."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
    from seqlab.recsys import SASRec
    from seqlab.recsys.data.datamodule import RecsysDataModule
    from seqlab.recsys.task import RecsysTask

    torch.set_num_threads(job["threads"])

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.val: list[tuple[int, float]] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

        def on_validation_epoch_end(self, trainer, module) -> None:
            v = trainer.callback_metrics.get("val/full/NDCG@10")
            if v is not None and not trainer.sanity_checking:
                self.val.append((trainer.current_epoch + 1, float(v)))

    model_kw, task_kw, data_kw = VARIANTS[job["variant"]]
    L.seed_everything(job["seed"], verbose=False)
    dm = RecsysDataModule(path=job["data"], max_len=job["max_len"], batch_size=job["batch_size"], seed=0, **data_kw)
    model = SASRec(dm.num_items, d_model=job["d_model"], num_blocks=2, num_heads=1, max_len=job["max_len"],
                   dropout=job["dropout"], **model_kw)
    task = RecsysTask(model, lr=1e-3, betas=(0.9, 0.98), **task_kw)
    timer = EpochTimer()
    callbacks: list = [timer]
    timing = job.get("timing_epochs")
    with tempfile.TemporaryDirectory() as ckdir:
        if not timing:
            ckpt = ModelCheckpoint(dirpath=ckdir, monitor="val/full/NDCG@10", mode="max")
            stop = EarlyStopping(monitor="val/full/NDCG@10", mode="max", patience=job["patience"],
                                 check_on_train_epoch_end=False)
            callbacks += [ckpt, stop]
        trainer = L.Trainer(max_epochs=timing or job["max_epochs"], accelerator=job["accelerator"], devices=1,
                            logger=False, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=not timing, callbacks=callbacks,
                            limit_val_batches=0 if timing else 1.0, num_sanity_val_steps=0,
                            check_val_every_n_epoch=job["val_every"],
                            max_time={"seconds": max(job["max_time_s"], 1.0)} if job.get("max_time_s") else None)
        t0 = time.perf_counter()
        trainer.fit(task, dm)
        out: dict = {"epochs": trainer.current_epoch, "train_wall_s": time.perf_counter() - t0,
                     "sec_per_epoch": statistics.median(timer.times), "device": str(trainer.strategy.root_device),
                     "train_samples_per_epoch": len(dm.datasets["train"]),
                     "train_targets_per_epoch": int(sum(min(len(dm.split.train_sequence(u)) - 1, job["max_len"])
                                                        for u in dm.datasets["train"].users))}
        if model_kw.get("encoder"):
            from seqlab.kernels._dispatch import choose_backend

            out["kernel_backend"] = choose_backend(torch.empty(0, device=trainer.strategy.root_device))
        if timing:
            return {**out, "epoch_times": timer.times}
        # read before testing: trainer.test(ckpt_path=...) restores the callbacks' state from the checkpoint
        stopped = ("early_stopping" if stop.stopped_epoch else
                   "max_epochs" if trainer.current_epoch >= job["max_epochs"] else "time_cap")
        res = trainer.test(task, dm, ckpt_path="best", verbose=False)[0]
    out.update({k: float(v) for k, v in res.items()})
    best = max(timer.val, key=lambda x: x[1]) if timer.val else (0, float("nan"))
    out.update(best_epoch=best[0], best_val_ndcg10=best[1], val_curve=timer.val, stopped_by=stopped,
               patience=job["patience"], val_every=job["val_every"])
    return out


# ---------------------------------------------------------------------------------------------------- RecBole
def job_recbole(job: dict) -> dict:
    """RecBole 1.2.1 SASRec + RecBole Trainer on our split; native test metrics and dumped scores of the best model.

    Runs in its own process. NumPy-2-removed aliases RecBole 1.2.1 reads (``np.float_``, ``np.complex_``, ...)
    are restored in this process and ``torch.load`` gets ``weights_only=False`` (RecBole's checkpoints hold its
    Config); RecBole's files are not changed.
    """
    import numpy as np

    for name, t in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_), ("float", float),
                    ("int", int), ("bool", bool), ("long", int)):
        if name not in np.__dict__:
            setattr(np, name, t)
    import torch

    _load = torch.load
    torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})
    torch.set_num_threads(job["threads"])
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    timing = job.get("timing_epochs")
    data_dir = Path(job["recbole_data"])
    cfg = {
        "data_path": str(data_dir.parent), "seed": job["seed"], "reproducibility": True,
        "use_gpu": job["accelerator"] != "cpu", "gpu_id": "0", "checkpoint_dir": str(Path.cwd() / "saved"),
        "show_progress": False, "log_wandb": False, "state": "WARNING",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "MAX_ITEM_LIST_LENGTH": job["max_len"], "train_neg_sample_args": None,
        **RECBOLE_CONFIGS[job["variant"]], **job.get("recbole_overrides", {}),
    }
    if timing:
        cfg.update(epochs=timing, eval_step=timing)
    config = Config(model="SASRec", dataset=data_dir.name, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    class TimeCap(Exception):
        pass

    times: list[float] = []
    curve: list[tuple[int, float]] = []
    deadline = time.perf_counter() + job["max_time_s"] if job.get("max_time_s") else None
    epoch_fn = trainer._train_epoch

    def timed_epoch(*a, **k):
        if deadline is not None and time.perf_counter() > deadline and curve:
            raise TimeCap
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = epoch_fn(*a, **k)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        return r

    trainer._train_epoch = timed_epoch
    t0 = time.perf_counter()
    stopped = "early_stopping"
    try:
        trainer.fit(train_data, valid_data, verbose=False, saved=not timing, show_progress=False,
                    callback_fn=lambda epoch, score: curve.append((epoch + 1, float(score))))
        if len(times) >= config["epochs"]:
            stopped = "max_epochs"
    except TimeCap:
        stopped = "time_cap"
    out: dict = {"epochs": len(times), "train_wall_s": time.perf_counter() - t0,
                 "sec_per_epoch": statistics.median(times), "device": str(config["device"]),
                 "recbole_version": recbole.__version__,
                 "recbole_config": {k: _plain(config[k]) for k in RECBOLE_REPORT_KEYS},
                 "train_samples_per_epoch": len(train_data.dataset),
                 "train_targets_per_epoch": len(train_data.dataset)}  # one next-item target per prefix sample
    if timing:
        return {**out, "epoch_times": times}
    native = dict(trainer.evaluate(test_data, load_best_model=True, model_file=trainer.saved_model_file,
                                   show_progress=False))
    best = max(curve, key=lambda x: x[1])
    out.update({"native/full_unmasked/NDCG@10": float(native["ndcg@10"]),
                "native/full_unmasked/HR@10": float(native["hit@10"]),
                "best_epoch": best[0], "best_val_ndcg10_native": best[1], "val_curve": curve, "stopped_by": stopped,
                "patience": config["stopping_step"], "val_every": config["eval_step"]})
    # scores of the best model (loaded by evaluate above) for every test user over every item, RecBole ids
    model.eval()
    users, scores, targets, last_inputs = [], [], [], []
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    with torch.no_grad():
        for inter, _, _, pos_i in test_data:
            inter = inter.to(config["device"])
            scores.append(model.full_sort_predict(inter).view(len(pos_i), -1).float().cpu().numpy())
            users.append(inter[uid_field].cpu().numpy())
            targets.append(pos_i.cpu().numpy())
            seqs, lens = inter[iid_field + config["LIST_SUFFIX"]], inter[config["ITEM_LIST_LENGTH_FIELD"]]
            last_inputs.append(seqs[torch.arange(len(lens)), lens - 1].cpu().numpy())
    np.savez(job["scores_out"], scores=np.concatenate(scores),
             users=dataset.id2token(uid_field, np.concatenate(users)),
             targets=dataset.id2token(iid_field, np.concatenate(targets)),
             last_inputs=dataset.id2token(iid_field, np.concatenate(last_inputs)),
             item_tokens=np.asarray(dataset.field2id_token[iid_field]))
    return out


def _plain(v):
    """JSON-friendly copy of a RecBole config value."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v if isinstance(v, str | int | float | bool | type(None)) else str(v)


def rank_recbole_scores(scores_path: str, data_path: str, max_len: int) -> dict:
    """Our ``full`` and ``sampled`` test metrics for RecBole's dumped scores: same targets, masks and negatives.

    Raises:
        RuntimeError: if RecBole's test targets or the last items of its test inputs differ from our split's.
    """
    import numpy as np
    import torch
    from seqlab.recsys.data import EvalTargets, leave_one_out, read_interactions
    from seqlab.recsys.metrics import full_ranks, metrics_from_ranks, sampled_ranks

    split = leave_one_out(read_interactions(data_path))
    test = EvalTargets(split, "test", max_len, num_negatives=100, seed=0)  # the negatives our runs are tested on
    d = np.load(scores_path, allow_pickle=False)
    col = np.array([0] + [split.item_index[t] for t in d["item_tokens"][1:]])  # RecBole id -> our id (0 = pad)
    row_of = {split.users[u]: k for k, (u, _, _, _) in enumerate(test.samples)}
    if sorted(row_of) != sorted(d["users"].tolist()):
        raise RuntimeError("RecBole evaluated a different set of test users than ours")
    n = len(test.samples)
    S = np.full((n, split.num_items + 1), -np.inf, dtype=np.float32)
    for r, u in enumerate(d["users"].tolist()):
        S[row_of[u], col[1:]] = d["scores"][r, 1:]
        _, hist, target, _ = test.samples[row_of[u]]
        if split.item_index[str(d["targets"][r])] != target or split.item_index[str(d["last_inputs"][r])] != hist[-1]:
            raise RuntimeError(f"user {u}: RecBole's test target/last input differ from our split")
    batch = [test[k] for k in range(n)]
    seen = torch.nn.utils.rnn.pad_sequence([b["seen"] for b in batch], batch_first=True)
    target = torch.stack([b["target"] for b in batch])
    negs = torch.stack([b["negatives"] for b in batch])
    scores = torch.from_numpy(S)
    rows = torch.arange(n)
    out = {}
    for proto, ranks in (("full", full_ranks(scores, target, seen)),
                         ("sampled", sampled_ranks(scores[rows, target], scores.gather(1, negs)))):
        out.update({f"test/{proto}/{k}": float(v.mean()) for k, v in metrics_from_ranks(ranks).items()})
    return out


# --------------------------------------------------------------------------------------------------- driver
def run_jobs_subprocess(jobs: list[dict], workdir: Path, extra_pythonpath: str, hard_timeout: float) -> list[dict]:
    """Run ``jobs`` one after the other in one fresh Python (``--job``); return results or error records.

    A job that fails gets ``error`` and the tail of the process log; the jobs after it in the bundle still run.
    """
    tag = "+".join(f"{j['variant']}-s{j['seed']}" + ("-timing" if j.get("timing_epochs") else "") for j in jobs)
    jdir = workdir / tag[:120]
    jdir.mkdir(parents=True, exist_ok=True)
    jobs = [{**j, "scores_out": str(jdir / f"scores{k}.npz")} for k, j in enumerate(jobs)]
    spec = jdir / "jobs.json"
    spec.write_text(json.dumps(jobs))
    threads = str(jobs[0]["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if extra_pythonpath:
        env["PYTHONPATH"] = extra_pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    with open(jdir / "log.txt", "w") as log:
        try:
            proc = subprocess.run([sys.executable, str(HERE), "--job", str(spec)], stdout=log, stderr=subprocess.STDOUT,
                                  cwd=jdir, env=env, timeout=max(hard_timeout, 5), check=False)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "killed at the hard deadline"
    result_file = jdir / "results.json"
    done = json.loads(result_file.read_text()) if result_file.is_file() else []
    wall = time.perf_counter() - t0
    out = []
    for k, job in enumerate(jobs):
        r = done[k] if k < len(done) else {"error": f"rc {rc}"}
        if "error" in r:
            r["log_tail"] = (jdir / "log.txt").read_text()[-2500:]
        r.update(variant=job["variant"], seed=job["seed"], timing=bool(job.get("timing_epochs")))
        r.setdefault("wall_s", wall)
        if job["kind"] == "recbole" and "error" not in r and not r["timing"]:
            try:
                r.update(rank_recbole_scores(job["scores_out"], job["data"], job["max_len"]))
            except Exception as e:  # noqa: BLE001 - reported, never silently dropped
                r["error"] = f"ranking RecBole scores failed: {e!r}"
        out.append(r)
    return out


def run_job_file(spec: Path) -> None:
    """The ``--job`` entry point: run each job of the bundle, appending to ``results.json`` as they finish."""
    import traceback

    results = []
    for job in json.loads(spec.read_text()):
        t0 = time.perf_counter()
        try:
            r = job_ours(job) if job["kind"] == "ours" else job_recbole(job)
        except Exception as e:  # noqa: BLE001 - recorded with its traceback; the bundle goes on
            traceback.print_exc()
            r = {"error": repr(e)}
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        (spec.parent / "results.json").write_text(json.dumps(results))


def summarize(runs: list[dict]) -> dict:
    """Mean and population std over the runs that finished, per reported key."""
    ok = [r for r in runs if "error" not in r]
    keys = (*REPORT, "native/full_unmasked/NDCG@10", "native/full_unmasked/HR@10", "sec_per_epoch", "epochs",
            "best_epoch", "train_wall_s")
    out: dict = {"runs_ok": len(ok), "runs_failed": len(runs) - len(ok),
                 "stopped_by": sorted(r.get("stopped_by", "?") for r in ok)}
    for k in keys:
        vals = [r[k] for r in ok if k in r]
        if vals:
            out[k] = {"mean": statistics.mean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                      "n": len(vals)}
    return out


def print_table(results: dict) -> None:
    cols = (*REPORT, "native/full_unmasked/NDCG@10")
    heads = ("full NDCG@10", "full HR@10", "sampled NDCG@10", "sampled HR@10", "RecBole-native NDCG@10")
    print(f"\n{'model':<16}" + "".join(f"{h:>24}" for h in heads)
          + f"{'epochs':>8}{'best':>6}{'s/ep grid':>10}{'s/ep alone':>11}  stopped_by")
    for name, s in results["summary"].items():
        cells = "".join(f"{s[k]['mean']:>15.4f} ±{s[k]['std']:.4f}" if k in s else f"{'-':>24}" for k in cols)
        ep = f"{s['epochs']['mean']:>8.0f}" if "epochs" in s else f"{'-':>8}"
        be = f"{s['best_epoch']['mean']:>6.0f}" if "best_epoch" in s else f"{'-':>6}"
        grid = f"{s['sec_per_epoch']['mean']:>10.3f}" if "sec_per_epoch" in s else f"{'-':>10}"
        alone = results["timing"].get(name, {}).get("sec_per_epoch")
        alone_s = f"{alone:>11.3f}" if isinstance(alone, float) else f"{'-':>11}"
        print(f"{name:<16}{cells}{ep}{be}{grid}{alone_s}  {','.join(s['stopped_by'])}"
              + (f"  FAILED {s['runs_failed']}" if s["runs_failed"] else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke: first --quick-users users, maxlen 20, a few epochs, seed 0, 2 workers")
    p.add_argument("--quick-users", type=int, default=50)
    p.add_argument("--variants", nargs="*", default=["sasrec-bce", "sasrec-ce", "mamba-ce", "gla-ce"],
                   choices=sorted(VARIANTS))
    p.add_argument("--recbole", nargs="*", default=["recbole-default"], choices=sorted(RECBOLE_CONFIGS),
                   help="RecBole configurations to run (none: skip the peer); recbole-paper (batch 128) costs ~25 s "
                        "per epoch alone on an H100 and does not converge inside the default budget")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--data", default=None, help="interaction file (default: ml-100k from the RecBole wheel)")
    p.add_argument("--max-len", type=int, default=200, help="window length, ours and RecBole's (paper: 200)")
    p.add_argument("--d-model", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-epochs", type=int, default=2000, help="upper bound; early stopping ends the runs")
    p.add_argument("--val-every", type=int, default=None,
                   help="validate every N epochs (default: 5 for sampled-negative losses, 1 for CE)")
    p.add_argument("--patience", type=int, default=10,
                   help="validations without improvement before stopping (RecBole's stopping_step default: 10)")
    p.add_argument("--recbole-epochs", type=int, default=300, help="RecBole's epoch bound (its default: 300)")
    p.add_argument("--timing-epochs", type=int, default=10,
                   help="epochs of the timing phase, ours and RecBole alone (0 skips it; RecBole runs a third)")
    p.add_argument("--budget-s", type=float, default=340.0,
                   help="wall budget of the whole grid; a run still training when its share runs out stops, is "
                        "tested on its best checkpoint and is marked stopped_by=time_cap")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: 2 with --quick, else 16)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--accelerator", default="auto", help="auto = cuda if available, else cpu")
    p.add_argument("--recbole-path", default="",
                   help="folder(s) prepended to PYTHONPATH of the RecBole runs (recbole 1.2.1 + colorlog, texttable)")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    if args.job:
        run_job_file(Path(args.job))
        return

    if args.quick:
        args.seeds = args.seeds if "--seeds" in sys.argv else [0]
        args.max_len = args.max_len if "--max-len" in sys.argv else 20
        args.max_epochs = args.max_epochs if "--max-epochs" in sys.argv else 2
        args.recbole_epochs = args.recbole_epochs if "--recbole-epochs" in sys.argv else 1
        args.timing_epochs = args.timing_epochs if "--timing-epochs" in sys.argv else 2
        args.patience = args.patience if "--patience" in sys.argv else 2
        args.val_every = args.val_every or 1
        args.recbole = args.recbole if "--recbole" in sys.argv else ["recbole-paper"]
        args.budget_s = args.budget_s if "--budget-s" in sys.argv else 150.0
    if args.workers is None:
        args.workers = 2 if args.quick else 16
    if args.accelerator == "auto":
        import torch

        args.accelerator = "gpu" if torch.cuda.is_available() else "cpu"

    start = time.perf_counter()
    results: dict = {"config": vars(args), "timing": {}, "runs": {}, "summary": {}, "host": _host()}
    lock = threading.Lock()

    def save() -> None:
        if args.json:
            with lock:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(results, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data, recbole_data = make_data(args, workdir)
        base = {"data": data, "recbole_data": recbole_data, "max_len": args.max_len, "d_model": args.d_model,
                "dropout": args.dropout, "batch_size": args.batch_size, "threads": args.threads,
                "accelerator": args.accelerator}

        def ours_job(variant: str, seed: int, **kw) -> dict:
            loss = VARIANTS[variant][1]["loss"]
            val_every = args.val_every or (1 if loss == "ce" else 5)
            return {**base, "kind": "ours", "variant": variant, "seed": seed, "max_epochs": args.max_epochs,
                    "val_every": val_every, "patience": args.patience, **kw}

        def recbole_job(variant: str, seed: int, **kw) -> dict:
            return {**base, "kind": "recbole", "variant": variant, "seed": seed,
                    "recbole_overrides": {"epochs": args.recbole_epochs, "stopping_step": args.patience}, **kw}

        def record(r: dict) -> None:
            with lock:
                if r["timing"]:
                    results["timing"][r["variant"]] = r
                else:
                    results["runs"].setdefault(r["variant"], []).append(r)
                    results["summary"][r["variant"]] = summarize(results["runs"][r["variant"]])
            what = f"{'timing ' if r['timing'] else ''}{r['variant']} seed {r['seed']}"
            if "error" in r:
                print(f"{what}: FAILED {r['error']}\n{r.get('log_tail', '')}", flush=True)
            elif r["timing"]:
                print(f"{what}: {r['sec_per_epoch']:.3f} s/epoch (median of {r['epochs']}), {r['device']}", flush=True)
            else:
                print(f"{what}: " + " ".join(f"{k}={r[k]:.4f}" for k in REPORT if k in r)
                      + f" epochs={r['epochs']} best={r['best_epoch']} stop={r['stopped_by']} "
                      f"s/epoch={r['sec_per_epoch']:.3f} wall={r['wall_s']:.0f}s", flush=True)
            save()

        timing_jobs = [ours_job(v, 0, timing_epochs=args.timing_epochs) for v in args.variants
                       if v in ("sasrec-bce", "sasrec-ce")] if args.timing_epochs else []
        timing_jobs += [recbole_job(v, 0, timing_epochs=max(1, args.timing_epochs // 3))
                        for v in args.recbole] if args.timing_epochs else []
        slow_first = ("sasrec-bce", "mamba-bce", "gla-bce", "sasrec-gbce", "mamba-ce", "gla-ce", "sasrec-ce")
        grid = [recbole_job(v, s) for v in sorted(args.recbole, reverse=True) for s in args.seeds]  # paper first
        grid += [ours_job(v, s) for v in sorted(args.variants, key=slow_first.index) for s in args.seeds]
        if args.quick:  # few processes on a small CPU: ours in one, RecBole in another, timing runs included
            bundles = [[j for j in timing_jobs + grid if j["kind"] == kind] for kind in ("ours", "recbole")]
            bundles = [b for b in bundles if b]
        else:  # 1. timing phase, one run at a time with nothing else on the machine; 2. the grid, one run each
            for job in timing_jobs:
                for r in run_jobs_subprocess([job], workdir, args.recbole_path if job["kind"] == "recbole" else "",
                                             hard_timeout=120):
                    record(r)
            bundles = [[j] for j in grid]
        grid_start = time.perf_counter()
        deadline = grid_start + args.budget_s

        def run(bundle: list[dict]) -> None:
            left = deadline - time.perf_counter()
            margin = 15.0 if args.quick else 45.0  # startup + test after the time cap
            bundle = [{**j, "max_time_s": max(left - margin, 5.0)} for j in bundle]
            for r in run_jobs_subprocess(bundle, workdir, args.recbole_path if bundle[0]["kind"] == "recbole" else "",
                                         hard_timeout=left + 30):
                record(r)

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(run, bundles))
        results["grid_wall_s"] = time.perf_counter() - grid_start
        results["total_wall_s"] = time.perf_counter() - start
        results["summary"] = {k: summarize(v) for k, v in results["runs"].items()}
    print_table(results)
    print(f"grid {results['grid_wall_s']:.0f} s, total {results['total_wall_s']:.0f} s, {args.workers} workers, "
          f"accelerator {args.accelerator}")
    save()


def _host() -> dict:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "gpu": gpu, "torch": torch.__version__, "python": platform.python_version()}


if __name__ == "__main__":
    main()
