"""Training losses for next-item prediction.

* ``sampled_bce_loss``: SASRec's binary cross-entropy with sampled negatives (kang205/SASRec ``model.py``:
  ``-log sigma(s+) - log(1 - sigma(s-))`` averaged over non-padding targets), generalised to ``k`` negatives per
  positive and to gBCE (Petrov & Macdonald, RecSys 2023, "gSASRec", Eq. 8): the positive term is weighted by
  ``beta`` (``beta * softplus(-s+)``, the form of asash/gSASRec-pytorch ``gbce.py``).
* ``gbce_beta``: ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`` with sampling rate ``alpha = k / (|I| - 1)``
  (paper Eq. 9-10); ``t = 0`` gives ``beta = 1`` (plain BCE), ``t = 1`` gives ``beta = alpha``.
* ``full_ce_loss``: softmax cross-entropy over the whole catalogue (padding id 0 excluded).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gbce_beta(num_items: int, num_negatives: int, t: float) -> float:
    """The gBCE exponent ``beta`` for ``num_negatives`` uniform negatives out of ``num_items`` items.

    Raises:
        ValueError: if ``t`` is outside [0, 1] or the sizes are not positive.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"gbce t must be in [0, 1], got {t}")
    if num_items < 2 or num_negatives < 1:
        raise ValueError(f"need num_items >= 2 and num_negatives >= 1, got {num_items}, {num_negatives}")
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def sampled_bce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, target_mask: torch.Tensor,
                     beta: float = 1.0) -> torch.Tensor:
    """(g)BCE over one positive and ``k`` negatives per target position.

    Args:
        pos_logits: ``[B, T]`` scores of the true next items.
        neg_logits: ``[B, T, k]`` scores of the sampled negatives.
        target_mask: ``[B, T]`` True where the target is a real item (not padding).
        beta: gBCE exponent of the positive probability (1.0 = SASRec's BCE).

    Returns:
        Scalar mean over target positions of ``beta * softplus(-s+) + sum_j softplus(s-_j)``.
    """
    if neg_logits.shape[:2] != pos_logits.shape or target_mask.shape != pos_logits.shape:
        raise ValueError(f"shape mismatch: pos {tuple(pos_logits.shape)}, neg {tuple(neg_logits.shape)}, "
                         f"mask {tuple(target_mask.shape)}; expected [B, T], [B, T, k], [B, T]")
    per_pos = beta * F.softplus(-pos_logits) + F.softplus(neg_logits).sum(-1)
    m = target_mask.to(per_pos.dtype)
    return (per_pos * m).sum() / m.sum().clamp_min(1.0)


def full_ce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over all items.

    Args:
        logits: ``[N, num_items + 1]`` scores (column 0, the padding id, is ignored).
        targets: ``[N]`` true item ids; entries equal to 0 (padding) are skipped.
    """
    logits = logits.clone()
    logits[..., 0] = float("-inf")
    return F.cross_entropy(logits, targets.long(), ignore_index=0)
