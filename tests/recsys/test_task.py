import csv
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from seqlab.core.errors import ConfigError, DataError
from seqlab.recsys import SASRec
from seqlab.recsys.data.datamodule import RecsysDataModule
from seqlab.recsys.task import RecsysTask

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "recsys").glob("*.yaml"))


@pytest.fixture
def log_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["user,item,timestamp"]
    for u in range(12):
        n = 2 if u == 0 else int(rng.integers(4, 12))  # user 0 is too short to evaluate
        for t, i in enumerate(rng.choice(np.arange(100, 140), size=n, replace=False)):
            rows.append(f"u{u},{i},{t}")
    p = tmp_path / "log.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _trainer(**kw):
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kw)


@pytest.mark.parametrize("loss,negs", [("bce", 1), ("gbce", 4), ("ce", 0)])
def test_fast_dev_run(log_csv, loss, negs):
    dm = RecsysDataModule(path=str(log_csv), max_len=8, num_negatives=negs, num_eval_negatives=10, batch_size=4)
    task = RecsysTask(SASRec(dm.num_items, d_model=8, max_len=8), loss=loss)
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(task, dm)
    trainer.test(task, dm, verbose=False)
    m = trainer.callback_metrics
    for key in ("test/full/NDCG@10", "test/sampled/NDCG@10", "test/full/HR@20", "test/sampled/MRR@1"):
        assert key in m and 0.0 <= float(m[key]) <= 1.0
    assert task.data_summary["train_only_users"] == 1 and task.monitor == "val/full/NDCG@10"


def test_predictions_csv_excludes_seen(log_csv, tmp_path):
    dm = RecsysDataModule(path=str(log_csv), max_len=8, num_eval_negatives=0, batch_size=4)
    task = RecsysTask(SASRec(dm.num_items, d_model=8, max_len=8), top_k=5)
    preds = _trainer().predict(task, dm)
    (out,) = task.write_predictions(preds, tmp_path / "run", dm)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    split = dm.split
    assert len(rows) == 5 * len(split.users)
    for r in rows:
        u = split.users.index(r["user_id"])
        assert split.item_index[r["item_id"]] not in split.sequences[u].tolist()


def test_errors(log_csv, tmp_path):
    dm = RecsysDataModule(path=str(log_csv), max_len=8)
    with pytest.raises(ConfigError, match="num_items"):
        _trainer(fast_dev_run=True).fit(RecsysTask(SASRec(dm.num_items + 3, d_model=8, max_len=8)), dm)
    dm0 = RecsysDataModule(path=str(log_csv), max_len=8, num_negatives=0)
    with pytest.raises(ConfigError, match="num_negatives"):
        _trainer(fast_dev_run=True).fit(RecsysTask(SASRec(dm0.num_items, d_model=8, max_len=8)), dm0)
    with pytest.raises(ConfigError, match="loss"):
        RecsysTask(SASRec(5), loss="bpr")
    with pytest.raises(DataError, match="not found"):
        RecsysDataModule(path=str(tmp_path / "missing.csv"))
    task = RecsysTask(SASRec(dm.num_items, d_model=8, max_len=8))
    batch = {"user": torch.tensor([0]), "seq": torch.tensor([[0, 0, 1, 999]]), "seen": torch.tensor([[1, 999]])}
    with pytest.raises(ValueError, match="outside"):
        task.predict_step(batch, 0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_configs_check(cfg):
    from seqlab.core.cli import main

    assert main(["check", str(cfg)]) == 0


def test_cli_fit_and_predict(log_csv, tmp_path):
    from seqlab.core.cli import main

    dm = RecsysDataModule(path=str(log_csv))
    over = [f"data.path={log_csv}", f"model.num_items={dm.num_items}", "data.max_len=8", "model.d_model=8",
            "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1", "trainer.accelerator=cpu",
            "data.batch_size=4"]
    runs = tmp_path / "runs"
    assert main(["fit", str(CONFIGS[[c.stem for c in CONFIGS].index("sasrec_ml100k")]), *over,
                 "--run-dir", str(runs)]) == 0
    ckpts = list(runs.rglob("*.ckpt"))
    assert ckpts and list(runs.rglob("data_summary.json"))
    assert main(["predict", str(CONFIGS[[c.stem for c in CONFIGS].index("sasrec_ml100k")]), *over,
                 "--ckpt", str(ckpts[0]), "--run-dir", str(runs)]) == 0
    assert list(runs.rglob("recommendations.csv"))
