"""``RecsysTask``: the LightningModule that trains and evaluates a next-item model (composition, not inheritance).

Losses: ``"bce"`` (SASRec: one or more sampled negatives per target, kang205/SASRec ``model.py``), ``"gbce"``
(gSASRec, Petrov & Macdonald 2023; ``beta`` from ``alpha = k / (|I| - 1)`` and ``gbce_t``), ``"ce"`` (softmax
over all items). The negatives are sampled by the data module (``num_negatives``); the task reads ``k`` from the
batch.

Evaluation logs ``<stage>/full/<metric>@<k>`` (all items, seen items masked) and ``<stage>/sampled/<metric>@<k>``
(100 uniform unseen negatives) for HR, NDCG, MRR at ``ks`` over every evaluated user, plus ``<stage>/loss``
(full-softmax cross-entropy of the target). The checkpoint monitor is ``monitor`` (default
``val/full/NDCG@10``, maximised).
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from seqlab.core.errors import ConfigError
from seqlab.recsys.losses import full_ce_loss, gbce_beta, sampled_bce_loss
from seqlab.recsys.metrics import DEFAULT_KS, full_ranks, metrics_from_ranks, sampled_ranks
from seqlab.recsys.models.sasrec import SASRec

LOSSES = ("bce", "gbce", "ce")


class RecsysTask(L.LightningModule):
    """Train/evaluate/predict wrapper around a ``SASRec``-like model.

    The model must provide ``forward(seq) -> [B, T, D]``, ``score(hidden, items)``, ``score_all(hidden)``,
    ``check_items(items)`` and ``num_items`` (as ``SASRec`` does).

    Args:
        model: the recommender.
        loss: ``"bce"``, ``"gbce"`` or ``"ce"``.
        gbce_t: gBCE calibration parameter ``t`` in [0, 1] (used by ``"gbce"``; gSASRec's default 0.75).
        lr: Adam learning rate (paper: 1e-3).
        betas: Adam betas (paper: (0.9, 0.98)).
        weight_decay: Adam weight decay.
        l2_emb: L2 penalty on the item embedding table (kang205 ``--l2_emb``, default 0).
        ks: cut-offs of HR/NDCG/MRR.
        top_k: number of recommendations per user written by ``seqlab predict``.
        monitor: metric the checkpoint callback follows.
        monitor_mode: ``"max"`` or ``"min"``.
    """

    def __init__(self, model: SASRec, loss: str = "bce", gbce_t: float = 0.75, lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.98), weight_decay: float = 0.0, l2_emb: float = 0.0,
                 ks: Sequence[int] = DEFAULT_KS, top_k: int = 10, monitor: str = "val/full/NDCG@10",
                 monitor_mode: str = "max") -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"task.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not 0.0 <= gbce_t <= 1.0:
            raise ConfigError(f"task.gbce_t must be in [0, 1], got {gbce_t}")
        if monitor_mode not in ("min", "max"):
            raise ConfigError(f"task.monitor_mode must be 'min' or 'max', got {monitor_mode!r}")
        self.model = model
        self.loss_name, self.gbce_t = loss, gbce_t
        self.lr, self.betas, self.weight_decay, self.l2_emb = lr, tuple(betas), weight_decay, l2_emb
        self.ks, self.top_k = tuple(ks), top_k
        self.monitor, self.monitor_mode = monitor, monitor_mode
        self.data_summary: dict[str, int] = {}
        self.save_hyperparameters(ignore=["model"])

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "summary"):
            self.data_summary = dm.summary()
            n = self.data_summary["items"]
            if n != self.model.num_items:
                raise ConfigError(f"model.num_items={self.model.num_items} but the data has {n} items after "
                                  f"filtering; set model.num_items={n}")

    def on_fit_start(self) -> None:
        if self.logger is not None and self.data_summary:
            self.logger.log_hyperparams({f"data/{k}": v for k, v in self.data_summary.items()})

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        seq, pos = batch["seq"], batch["pos"]
        hidden = self.model(seq)  # [B, T, D]
        target = pos != 0
        if self.loss_name == "ce":
            loss = full_ce_loss(self.model.score_all(hidden[target]), pos[target])
        else:
            neg = batch["neg"]  # [B, T, k]
            k = neg.shape[-1]
            if k < 1:
                raise ConfigError(f"task.loss={self.loss_name!r} needs data.num_negatives >= 1, got {k}")
            beta = gbce_beta(self.model.num_items, k, self.gbce_t) if self.loss_name == "gbce" else 1.0
            pos_logits = self.model.score(hidden, pos.unsqueeze(-1)).squeeze(-1)
            loss = sampled_bce_loss(pos_logits, self.model.score(hidden, neg), target, beta)
        if self.l2_emb:
            loss = loss + self.l2_emb * self.model.item_emb.weight.pow(2).sum()
        self.log("train/loss", loss, prog_bar=True, batch_size=seq.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        scores = self.model.score_all(self.model(batch["seq"])[:, -1])  # [B, num_items + 1]
        target = batch["target"]
        B = target.shape[0]
        self.log(f"{stage}/loss", full_ce_loss(scores, target), batch_size=B, sync_dist=True)
        ranks = {"full": full_ranks(scores, target, batch["seen"])}
        if batch["negatives"].shape[1]:
            rows = torch.arange(B, device=scores.device)
            ranks["sampled"] = sampled_ranks(scores[rows, target], scores.gather(1, batch["negatives"]))
        for protocol, r in ranks.items():
            for name, values in metrics_from_ranks(r, self.ks).items():
                key = f"{stage}/{protocol}/{name}"
                self.log(key, values.mean().float(), batch_size=B, sync_dist=True,
                         prog_bar=key == self.monitor)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Top-``top_k`` unseen items of every user in the batch."""
        seq, seen = batch["seq"], batch["seen"]
        self.model.check_items(seen, "seen")
        scores = self.model.score_all(self.model(seq)[:, -1])
        scores[:, 0] = float("-inf")
        scores.scatter_(1, seen.long(), float("-inf"))
        k = min(self.top_k, self.model.num_items)
        top = scores.topk(k, dim=1)
        return {"user": batch["user"].cpu(), "items": top.indices.cpu(), "scores": top.values.float().cpu()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)

    def write_predictions(self, predictions: list[dict[str, torch.Tensor]], run_dir: Path,
                          datamodule: Any) -> list[Path]:
        """Write ``recommendations.csv`` (user_id, rank, item_id, score; raw ids, seen items excluded).

        Items with score ``-inf`` (fewer unseen items than ``top_k``) are left out.
        """
        split = datamodule.prepare_split()
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        out, tmp = run_dir / "recommendations.csv", run_dir / "recommendations.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "rank", "item_id", "score"])
            for p in predictions:
                for u, items, scores in zip(p["user"].tolist(), p["items"].tolist(), p["scores"].tolist()):
                    for rank, (i, s) in enumerate(zip(items, scores), start=1):
                        if s != float("-inf"):
                            w.writerow([split.users[u], rank, split.items[i - 1], f"{s:.6g}"])
        os.replace(tmp, out)
        return [out]

    def save_artifacts(self, run_dir: Path, datamodule: Any, stage: str) -> list[Path]:
        """Write ``data_summary.json`` (users, items, evaluated users, users kept in training only)."""
        if not hasattr(datamodule, "summary"):
            return []
        out = Path(run_dir) / "data_summary.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(datamodule.summary(), indent=2))
        return [out]
