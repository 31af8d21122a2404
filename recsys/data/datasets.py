"""Torch datasets over a ``SequenceSplit`` (training windows, evaluation targets, prediction histories).

Training follows kang205/SASRec ``sampler.py``: for a user's training sequence ``s``, the input is ``s[:-1]`` and the
targets are ``s[1:]``, both cut to the last ``max_len`` items and left-padded with 0; each target position gets
``k`` negatives drawn uniformly from the items the user has not interacted with in training. One epoch visits
every user once in shuffled order; kang205 instead draws ``num_users / batch_size`` batches of users with
replacement, the same number of samples per epoch in expectation.
"""
from __future__ import annotations

import numpy as np
import torch
from seqlab.core.errors import DataError
from seqlab.recsys.data.split import SequenceSplit
from torch.utils.data import Dataset


def left_pad(seq: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` entries of ``seq``, left-padded with zeros to exactly ``length``."""
    out = np.zeros(length, dtype=np.int64)
    tail = seq[-length:] if length else seq[:0]
    if len(tail):
        out[length - len(tail):] = tail
    return out


def sample_negatives(rng: np.random.Generator, num_items: int, exclude: np.ndarray,
                     size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform item ids in ``1..num_items`` not in ``exclude`` (rejection sampling).

    Raises:
        DataError: if ``exclude`` covers every item.
    """
    exclude = np.unique(exclude)
    if len(np.setdiff1d(exclude, [0])) >= num_items:
        raise DataError(f"cannot sample negatives: the user has interacted with all {num_items} items")
    out = rng.integers(1, num_items + 1, size=size)
    bad = np.isin(out, exclude)
    while bad.any():
        out[bad] = rng.integers(1, num_items + 1, size=int(bad.sum()))
        bad = np.isin(out, exclude)
    return out


class TrainWindows(Dataset):
    """One sample per user whose training sequence has >= 2 items: ``seq``, ``pos`` [T], ``neg`` [T, k].

    Negatives are drawn with a numpy generator seeded from torch's RNG, so runs are reproducible under
    ``lightning.seed_everything`` (DataLoader workers get their own torch seeds).
    """

    def __init__(self, split: SequenceSplit, max_len: int, num_negatives: int) -> None:
        self.split, self.max_len, self.num_negatives = split, max_len, num_negatives
        self.users = [u for u in range(len(split.sequences)) if len(split.train_sequence(u)) >= 2]
        if not self.users:
            raise DataError("no user has at least 2 training interactions")

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        train = self.split.train_sequence(self.users[i])
        seq = left_pad(train[:-1], self.max_len)
        pos = left_pad(train[1:], self.max_len)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        neg = sample_negatives(rng, self.split.num_items, train, (self.max_len, self.num_negatives))
        neg[pos == 0] = 0
        return {"seq": torch.from_numpy(seq), "pos": torch.from_numpy(pos), "neg": torch.from_numpy(neg)}


class EvalTargets(Dataset):
    """Evaluation samples of users with >= 3 interactions for ``stage`` "val" or "test".

    Each sample: ``seq`` (history before the target, last ``max_len`` items, left-padded), ``target``,
    ``seen`` (the whole history before the target; masked in full ranking) and ``negatives``
    (``num_negatives`` uniform items the user never interacted with, fixed by ``seed``; the sampled protocol).
    """

    def __init__(self, split: SequenceSplit, stage: str, max_len: int, num_negatives: int = 100,
                 seed: int = 0) -> None:
        if stage not in ("val", "test"):
            raise ValueError(f"stage must be 'val' or 'test', got {stage!r}")
        self.split, self.max_len = split, max_len
        self.users = split.eval_users
        cut = 2 if stage == "val" else 1
        rng = np.random.default_rng([seed, 0 if stage == "val" else 1])
        self.samples = []
        for u in self.users:
            s = split.sequences[u]
            hist, target = s[:-cut], int(s[-cut])
            negs = sample_negatives(rng, split.num_items, s, num_negatives) if num_negatives else np.zeros(0, int)
            self.samples.append((int(u), hist, target, negs))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        u, hist, target, negs = self.samples[i]
        return {"user": torch.tensor(u), "seq": torch.from_numpy(left_pad(hist, self.max_len)),
                "target": torch.tensor(target), "seen": torch.from_numpy(hist.astype(np.int64)),
                "negatives": torch.from_numpy(negs.astype(np.int64))}


class UserHistories(Dataset):
    """Every user's full history, for recommending the next item (``seqlab predict``)."""

    def __init__(self, split: SequenceSplit, max_len: int) -> None:
        self.split, self.max_len = split, max_len

    def __len__(self) -> int:
        return len(self.split.sequences)

    def __getitem__(self, u: int) -> dict[str, torch.Tensor]:
        s = self.split.sequences[u]
        return {"user": torch.tensor(u), "seq": torch.from_numpy(left_pad(s, self.max_len)),
                "seen": torch.from_numpy(s.astype(np.int64))}


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples; ``seen`` histories of different lengths are right-padded with 0."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "seen":
            out[key] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True, padding_value=0)
        else:
            out[key] = torch.stack(values)
    return out
