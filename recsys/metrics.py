"""Ranking metrics for next-item recommendation, under two labelled protocols.

* ``full``: the target is ranked against every item ``1..num_items``; the user's previously seen items are
  masked (they cannot be recommended), the target itself never is. This is the default protocol.
* ``sampled``: the target is ranked against 100 items drawn uniformly from the items the user never interacted
  with (the protocol of Kang & McAuley 2018, Sec. IV-C; kang205/SASRec ``util.evaluate``).

Tie rule (both protocols): pessimistic. The 0-based rank is the number of competing items whose score is greater
than **or equal to** the target's score, so a constant model ranks the target last, never first.

For a 0-based rank ``r``: ``HR@k = [r < k]``, ``NDCG@k = [r < k] / log2(r + 2)`` (one relevant item, so IDCG = 1),
``MRR@k = [r < k] / (r + 1)``. Metric names carry the protocol: ``<prefix>/<protocol>/<metric>@<k>``,
e.g. ``test/full/NDCG@10``.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
METRICS: tuple[str, ...] = ("HR", "NDCG", "MRR")


def full_ranks(scores: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
    """0-based pessimistic rank of each target among all items, seen items masked.

    Args:
        scores: ``[B, num_items + 1]`` scores; column 0 is the padding id and never competes.
        targets: ``[B]`` target ids in ``1..num_items``.
        seen: optional ``[B, H]`` ids of items to mask (0 = padding, ignored); the target is never masked,
            even if it was seen before.

    Returns:
        ``[B]`` int64 ranks in ``0..num_items - 1``.
    """
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(f"expected scores [B, N+1] and targets [B], got {tuple(scores.shape)}, "
                         f"{tuple(targets.shape)}")
    targets = targets.long()
    if targets.numel() and (int(targets.min()) < 1 or int(targets.max()) >= scores.shape[1]):
        raise ValueError(f"targets must be item ids in [1, {scores.shape[1] - 1}]")
    competing = torch.ones_like(scores, dtype=torch.bool)
    competing[:, 0] = False
    if seen is not None:
        if seen.dim() != 2 or seen.shape[0] != scores.shape[0]:
            raise ValueError(f"seen must be [B, H] with B={scores.shape[0]}, got {tuple(seen.shape)}")
        competing.scatter_(1, seen.long(), False)
    rows = torch.arange(scores.shape[0], device=scores.device)
    competing[rows, targets] = False
    target_score = scores[rows, targets].unsqueeze(1)
    return ((scores >= target_score) & competing).sum(dim=1)


def sampled_ranks(target_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """0-based pessimistic rank of each target among its sampled negatives.

    Args:
        target_scores: ``[B]`` scores of the targets.
        negative_scores: ``[B, K]`` scores of the K sampled negatives.
    """
    if negative_scores.dim() != 2 or target_scores.shape != negative_scores.shape[:1]:
        raise ValueError(f"expected target_scores [B] and negative_scores [B, K], got "
                         f"{tuple(target_scores.shape)}, {tuple(negative_scores.shape)}")
    return (negative_scores >= target_scores.unsqueeze(1)).sum(dim=1)


def metrics_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, torch.Tensor]:
    """Per-user metric values ``{"HR@k": [B], "NDCG@k": [B], "MRR@k": [B]}`` (float) for 0-based ``ranks``."""
    r = ranks.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hit = (r < k).to(torch.float64)
        out[f"HR@{k}"] = hit
        out[f"NDCG@{k}"] = hit / torch.log2(r + 2.0)
        out[f"MRR@{k}"] = hit / (r + 1.0)
    return out


class RankingAccumulator:
    """Sums per-user metrics over batches; ``compute()`` gives means over every user seen (no subsampling)."""

    def __init__(self, ks: Iterable[int] = DEFAULT_KS) -> None:
        self.ks = tuple(ks)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.sums: dict[str, dict[str, float]] = {}
        self.counts: dict[str, int] = {}

    def update(self, protocol: str, ranks: torch.Tensor) -> None:
        """Add the 0-based ``ranks`` [B] of one batch under ``protocol`` ("full" or "sampled")."""
        sums = self.sums.setdefault(protocol, {})
        for name, values in metrics_from_ranks(ranks, self.ks).items():
            sums[name] = sums.get(name, 0.0) + float(values.sum())
        self.counts[protocol] = self.counts.get(protocol, 0) + int(ranks.numel())

    def compute(self, prefix: str) -> dict[str, float]:
        """Means as ``{"<prefix>/<protocol>/<metric>@<k>": value}``."""
        return {f"{prefix}/{p}/{name}": s / max(self.counts[p], 1)
                for p, sums in self.sums.items() for name, s in sums.items()}
