"""Any registered core sequence block as a channel-independent patch forecaster.

The layout is PatchTST's (Nie et al., ICLR 2023): every variable is forecast on its own with shared weights;
the window is normalised per variable (RevIN without affine, as PatchTST's ``revin=1, affine=0``), cut into
patches of ``patch_len`` with ``stride`` (the end padded by repeating the last value, ``padding_patch='end'``),
each patch embedded linearly with a learned position embedding, mixed by ``n_layers`` pre-norm residual layers
of ``seqlab.core.create_block(block, d_model)`` plus an MLP, then flattened and mapped to the horizon.
The mixer is the only thing that changes between ``block="mamba"``, ``"lstm"``, ``"attention"``, ...
"""
from __future__ import annotations

from typing import Any

import torch
from seqlab.core.registry import create_block
from torch import nn


class _Layer(nn.Module):
    def __init__(self, block: str, d_model: int, block_kwargs: dict[str, Any], mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.mixer = create_block(block, d_model, **block_kwargs)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_ratio * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y, _ = self.mixer(self.norm1(h))
        h = h + self.drop(y)
        return h + self.drop(self.mlp(self.norm2(h)))


class BlockForecaster(nn.Module):
    """Channel-independent patch forecaster around a core block, ``[B, L, C] -> [B, H, C]``.

    Args:
        seq_len: lookback L.
        pred_len: horizon H.
        block: name of a registered core block (see ``seqlab.core.list_blocks()``).
        n_vars: C (only checked; weights are shared across variables).
        d_model: width of the patch tokens.
        n_layers: residual layers.
        patch_len: steps per patch (PatchTST default 16).
        stride: step between patches (PatchTST default 8).
        mlp_ratio: hidden width of the per-layer MLP, in multiples of ``d_model``.
        dropout: dropout in layers and head.
        revin: per-window normalisation of every variable.
        block_kwargs: extra keyword arguments for the block constructor.

    Raises:
        ValueError: ``patch_len`` or ``stride`` out of range; wrong input shape in ``forward``.
        seqlab.core.errors.ConfigError: unknown block name.
    """

    def __init__(self, seq_len: int, pred_len: int, block: str = "lstm", n_vars: int = 1, d_model: int = 64,
                 n_layers: int = 2, patch_len: int = 16, stride: int = 8, mlp_ratio: int = 2,
                 dropout: float = 0.1, revin: bool = True, block_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not 1 <= patch_len <= seq_len or stride < 1:
            raise ValueError(f"need 1 <= patch_len <= seq_len={seq_len} and stride >= 1; "
                             f"got patch_len={patch_len}, stride={stride}")
        self.seq_len, self.pred_len, self.n_vars, self.block = seq_len, pred_len, n_vars, block
        self.patch_len, self.stride, self.revin = patch_len, stride, revin
        self.n_patches = (seq_len - patch_len) // stride + 2  # +1 from the end padding, as PatchTST
        self.embed = nn.Linear(patch_len, d_model)
        self.pos = nn.Parameter(torch.randn(1, self.n_patches, d_model) * 0.02)
        self.layers = nn.ModuleList(_Layer(block, d_model, dict(block_kwargs or {}), mlp_ratio, dropout)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Flatten(1), nn.Dropout(dropout), nn.Linear(self.n_patches * d_model, pred_len))

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.seq_len or x.shape[2] != self.n_vars:
            raise ValueError(f"x must have shape [B, {self.seq_len}, {self.n_vars}], got {tuple(x.shape)}")
        b, length, c = x.shape
        if self.revin:
            mean = x.mean(1, keepdim=True).detach()
            std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5).detach()
            x = (x - mean) / std
        series = x.permute(0, 2, 1).reshape(b * c, length)  # [B*C, L]
        series = torch.cat([series, series[:, -1:].expand(-1, self.stride)], dim=1)
        patches = series.unfold(1, self.patch_len, self.stride)  # [B*C, N, patch_len]
        h = self.embed(patches) + self.pos
        for layer in self.layers:
            h = layer(h)
        y = self.head(self.norm(h)).reshape(b, c, self.pred_len).permute(0, 2, 1)  # [B, H, C]
        if self.revin:
            y = y * std + mean
        return y
