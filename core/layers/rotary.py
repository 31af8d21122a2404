"""Rotary position embedding (Su et al., 2021, RoFormer) with a position offset for cached decoding."""
from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotates pairs of channels of q/k by position-dependent angles (GPT-NeoX "half" layout).

    Channel ``i < dim/2`` is paired with ``i + dim/2``; the angle of pair ``i`` at position ``p`` is
    ``p * base^(-2i/dim)``. Only the first ``dim`` channels of the head are rotated (partial rotary).

    Args:
        dim: rotated channels per head (even).
        base: frequency base.
    """

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"RotaryEmbedding: dim must be even, got {dim}")
        self.dim = dim
        self.base = base
        self.register_buffer("inv_freq", base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim),
                             persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Rotate ``x`` ``[B, T, H, Dh]`` at positions ``offset .. offset + T - 1``."""
        t = x.shape[1]
        pos = torch.arange(offset, offset + t, device=x.device, dtype=torch.float64)
        ang = pos[:, None] * self.inv_freq.to(x.device)[None, :]  # [T, dim/2]
        cos = ang.cos().to(x.dtype)[None, :, None, :]
        sin = ang.sin().to(x.dtype)[None, :, None, :]
        half = self.dim // 2
        x1, x2, rest = x[..., :half], x[..., half:self.dim], x[..., self.dim:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
