"""LightningDataModule for sequential recommendation (leave-one-out, full and sampled evaluation)."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from seqlab.core.errors import DataError
from seqlab.recsys.data.datasets import EvalTargets, TrainWindows, UserHistories, collate
from seqlab.recsys.data.readers import FORMATS, read_interactions, recbole_ml100k_path
from seqlab.recsys.data.split import SequenceSplit, kcore_filter, leave_one_out
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


class RecsysDataModule(L.LightningDataModule):
    """Interaction log -> chronological sequences -> leave-one-out loaders.

    Args:
        path: interaction file (``ratings.dat``, ``u.data``, RecBole ``.inter`` or CSV); None reads ml-100k from
            the installed RecBole wheel (``recbole/dataset_example/ml-100k/ml-100k.inter``) in place.
        fmt: ``"auto"`` or one of ``ml-1m``, ``ml-100k``, ``recbole``, ``csv``.
        min_user_interactions: k-core threshold for users (0 = no filtering).
        min_item_interactions: k-core threshold for items (0 = no filtering).
        max_len: window length fed to the model (kang205 ``maxlen``).
        num_negatives: sampled negatives per training target (1 for SASRec's BCE, k for gBCE, 0 for full CE).
        num_eval_negatives: negatives of the sampled evaluation protocol (100 in the paper).
        batch_size: training batch size (paper: 128).
        eval_batch_size: validation/test/predict batch size.
        num_workers: DataLoader workers.
        seed: seed of the fixed evaluation negatives.

    Raises:
        DataError: at construction if ``path`` does not exist or RecBole is absent for the default; at setup for
            malformed data.
    """

    def __init__(self, path: str | None = None, fmt: str = "auto", min_user_interactions: int = 0,
                 min_item_interactions: int = 0, max_len: int = 200, num_negatives: int = 1,
                 num_eval_negatives: int = 100, batch_size: int = 128, eval_batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else recbole_ml100k_path()
        if not self.path.is_file():
            raise DataError(f"interaction file not found: {self.path}")
        if fmt != "auto" and fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}")
        if num_negatives < 0 or num_eval_negatives < 0:
            raise DataError("num_negatives and num_eval_negatives must be >= 0")
        self.fmt, self.max_len = fmt, max_len
        self.min_user, self.min_item = min_user_interactions, min_item_interactions
        self.num_negatives, self.num_eval_negatives = num_negatives, num_eval_negatives
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.split: SequenceSplit | None = None
        self.datasets: dict[str, object] = {}

    def prepare_split(self) -> SequenceSplit:
        """Read, filter and split the data once (idempotent)."""
        if self.split is None:
            df = kcore_filter(read_interactions(self.path, self.fmt), self.min_user, self.min_item)
            self.split = leave_one_out(df)
            s = self.split.summary()
            log.warning("recsys data %s: %d users, %d items, %d interactions; %d users evaluated, "
                        "%d users with < 3 interactions kept in training only", self.path.name, s["users"],
                        s["items"], s["interactions"], s["eval_users"], s["train_only_users"])
        return self.split

    @property
    def num_items(self) -> int:
        """Number of items after filtering (reads the data on first use)."""
        return self.prepare_split().num_items

    def summary(self) -> dict[str, int]:
        """Data counts, including users kept in training only."""
        return self.prepare_split().summary()

    def setup(self, stage: str | None = None) -> None:
        split = self.prepare_split()
        if stage in (None, "fit"):
            self.datasets["train"] = TrainWindows(split, self.max_len, self.num_negatives)
        if stage in (None, "fit", "validate"):
            self.datasets["val"] = EvalTargets(split, "val", self.max_len, self.num_eval_negatives, self.seed)
        if stage in (None, "test"):
            self.datasets["test"] = EvalTargets(split, "test", self.max_len, self.num_eval_negatives, self.seed)
        if stage in (None, "predict"):
            self.datasets["predict"] = UserHistories(split, self.max_len)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if name not in self.datasets:
            self.setup({"train": "fit", "val": "validate"}.get(name, name))
        bs = self.batch_size if name == "train" else self.eval_batch_size
        return DataLoader(self.datasets[name], batch_size=bs, shuffle=shuffle, collate_fn=collate,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)
