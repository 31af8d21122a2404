"""From an interaction table to chronological per-user sequences and a leave-one-out split.

Follows kang205/SASRec ``util.data_partition``: per user, the last item is the test target, the one before it the
validation target, the rest is training data; users with fewer than 3 interactions keep everything in training and
are not evaluated. Unlike the original, that count is reported (``SequenceSplit.num_train_only_users``), never
silent.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from seqlab.core.errors import DataError

log = logging.getLogger(__name__)


def kcore_filter(df: pd.DataFrame, min_user: int = 0, min_item: int = 0) -> pd.DataFrame:
    """Repeatedly drop users with < ``min_user`` and items with < ``min_item`` interactions until stable.

    Raises:
        DataError: if nothing is left.
    """
    if min_user <= 1 and min_item <= 1:
        return df
    while True:
        ucount = df.groupby("user")["item"].transform("size")
        icount = df.groupby("item")["user"].transform("size")
        keep = (ucount >= min_user) & (icount >= min_item)
        if keep.all():
            break
        df = df[keep]
    if df.empty:
        raise DataError(f"k-core filtering (min_user={min_user}, min_item={min_item}) left no interactions")
    return df


def _sorted_vocab(values: pd.Series) -> list[str]:
    uniq = values.unique().tolist()
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return sorted(uniq)


@dataclass
class SequenceSplit:
    """Leave-one-out split of chronological item sequences (item ids ``1..num_items``, 0 is padding).

    Attributes:
        users: raw user ids, index ``u`` of every list below.
        items: raw item ids; ``items[i - 1]`` is the raw id of item ``i``.
        sequences: full chronological sequence of each user (int64 arrays).
        num_train_only_users: users with < 3 interactions (trained on, not evaluated).
    """

    users: list[str]
    items: list[str]
    sequences: list[np.ndarray]
    num_train_only_users: int = 0
    item_index: dict[str, int] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        """Number of distinct items."""
        return len(self.items)

    @property
    def eval_users(self) -> np.ndarray:
        """Indices of users with >= 3 interactions (those with a validation and a test target)."""
        return np.array([u for u, s in enumerate(self.sequences) if len(s) >= 3], dtype=np.int64)

    def train_sequence(self, u: int) -> np.ndarray:
        """Training part of user ``u``: all but the last two items (everything if fewer than 3)."""
        s = self.sequences[u]
        return s if len(s) < 3 else s[:-2]

    def summary(self) -> dict[str, int]:
        """Counts for logs: users, items, interactions, evaluated users, users kept in training only."""
        return {"users": len(self.users), "items": self.num_items,
                "interactions": int(sum(len(s) for s in self.sequences)),
                "eval_users": len(self.eval_users), "train_only_users": self.num_train_only_users}


def leave_one_out(df: pd.DataFrame) -> SequenceSplit:
    """Build chronological per-user sequences from ``df[user, item, timestamp]`` and split them leave-one-out.

    Interactions are ordered by timestamp with a stable sort, so equal timestamps keep their file order.
    Users are indexed in order of first appearance after sorting by raw id; items get ids ``1..N`` in raw-id order.
    """
    missing = [c for c in ("user", "item", "timestamp") if c not in df.columns]
    if missing:
        raise DataError(f"interaction table lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise DataError("interaction table is empty")
    items = _sorted_vocab(df["item"])
    item_index = {it: i + 1 for i, it in enumerate(items)}
    users = _sorted_vocab(df["user"])
    ordered = df.sort_values("timestamp", kind="stable")
    codes = ordered["item"].map(item_index).to_numpy(dtype=np.int64)
    groups = pd.Series(np.arange(len(ordered))).groupby(ordered["user"].to_numpy(), sort=False).indices
    sequences = [codes[np.sort(groups[u])] for u in users]
    short = sum(len(s) < 3 for s in sequences)
    if short:
        log.warning("%d of %d users have fewer than 3 interactions: kept in training only, not evaluated",
                    short, len(users))
    return SequenceSplit(users=users, items=items, sequences=sequences, num_train_only_users=short,
                         item_index=item_index)
