"""Channel mixers for the backbone: a GELU MLP and SwiGLU (Shazeer, 2020, "GLU Variants Improve Transformer")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``fc2(dropout(gelu(fc1(x))))`` with hidden width ``hidden``.

    Args:
        d_model: input and output width.
        hidden: hidden width (default ``4 * d_model``).
        dropout: dropout on the hidden activations.
    """

    def __init__(self, d_model: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = hidden or 4 * d_model
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` (the LLaMA feed-forward).

    Args:
        d_model: input and output width.
        hidden: hidden width (default ``8/3 * d_model`` rounded up to a multiple of 8).
        dropout: dropout on the hidden activations.
    """

    def __init__(self, d_model: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = hidden or 8 * ((8 * d_model // 3 + 7) // 8)
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(F.silu(self.gate(x)) * self.up(x)))
