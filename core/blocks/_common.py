"""Helpers every block uses: input validation with one clear message."""
from __future__ import annotations

import torch


def check_seq(block: str, x: torch.Tensor, d_model: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, T, d_model]``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{block}: expected x of shape [B, T, D={d_model}], got {shape}")


def check_step(block: str, x_t: torch.Tensor, d_model: int) -> None:
    """Raise ``ValueError`` unless ``x_t`` is ``[B, d_model]``."""
    if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2 or x_t.shape[-1] != d_model:
        shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
        raise ValueError(f"{block}: step expects x_t of shape [B, D={d_model}], got {shape}")
