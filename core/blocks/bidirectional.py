"""Bidirectional wrapper: a forward pass plus a pass over the reversed sequence, for non-causal domains.

As in Vision Mamba (Zhu et al., 2024, Sec. 3.2: forward and backward SSM branches) and bidirectional
RNNs (Schuster & Paliwal, 1997): two independent copies of a causal block, one run left-to-right and one
right-to-left, merged by a sum or by concatenation and a linear map.
"""
from __future__ import annotations

from typing import Any

import torch
from seqlab.core.blocks._common import check_seq
from seqlab.core.registry import create_block, register_block
from torch import nn


@register_block("bidirectional")
class Bidirectional(nn.Module):
    """Runs ``block`` forwards and backwards over T and merges; non-causal, returns state ``None``.

    Args:
        d_model: input/output width.
        block: registered name of the inner (causal) block.
        merge: ``"add"`` (sum the two directions) or ``"concat"`` (concatenate, then ``Linear(2D, D)``).
        block_kwargs: keyword arguments of the inner block.
    """

    causal = False

    def __init__(self, d_model: int, block: str = "gru", merge: str = "add",
                 block_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if merge not in ("add", "concat"):
            raise ValueError(f"bidirectional: merge must be 'add' or 'concat', got {merge!r}")
        if block == "bidirectional":
            raise ValueError("bidirectional: the inner block cannot itself be 'bidirectional'")
        self.d_model = d_model
        self.merge = merge
        kw = dict(block_kwargs or {})
        self.fwd = create_block(block, d_model, **kw)
        self.bwd = create_block(block, d_model, **kw)
        self.proj = nn.Linear(2 * d_model, d_model) if merge == "concat" else None

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Non-causal: no carried state."""
        return

    def forward(self, x: torch.Tensor, state=None):
        check_seq("bidirectional", x, self.d_model)
        y_f, _ = self.fwd(x)
        y_b, _ = self.bwd(x.flip(1))
        y_b = y_b.flip(1)
        y = y_f + y_b if self.proj is None else self.proj(torch.cat([y_f, y_b], dim=-1))
        return y, None
