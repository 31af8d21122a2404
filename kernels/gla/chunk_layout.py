"""Chunk layout shared by the Kernels II Triton paths (gla, delta_rule): packed sequences as a batch of chunks.

Every sequence (a batch row, or a ``cu_seqlens`` segment) is cut into chunks of ``C`` steps; the last chunk of a
sequence is padded with zero rows. Tensors ``[B, T, H, D]`` become ``[NT, C, H, D]`` (NT = total number of
chunks), so every kernel works on full ``C``-row tiles and needs no sequence bounds: a zero row (k = v = 0,
log decay 0, beta 0) leaves the recurrence unchanged. ``chunk_offsets[n]`` is the first chunk of sequence n.
For dense batches with ``T % C == 0`` the conversion is a free ``view``.
"""
from __future__ import annotations

import itertools

import torch


class ChunkLayout:
    """Maps packed ``[B, T, ...]`` tensors to and from the padded chunk layout ``[NT, C, ...]``.

    Args:
        B: batch size (1 with ``cu_seqlens``).
        T: packed length.
        cu_seqlens: ``[N + 1]`` offsets or None.
        device: device of the index tensors.
        C: chunk length.
    """

    def __init__(self, B: int, T: int, cu_seqlens: torch.Tensor | None, device: torch.device, C: int = 64):
        self.B, self.T, self.C = B, T, C
        if cu_seqlens is None:
            starts, lens = [b * T for b in range(B)], [T] * B
        else:
            offs = cu_seqlens.tolist()
            starts, lens = offs[:-1], [b - a for a, b in itertools.pairwise(offs)]
        counts = [(L + C - 1) // C for L in lens]
        offsets = [0]
        for c in counts:
            offsets.append(offsets[-1] + c)
        self.N, self.NT = len(lens), offsets[-1]
        self.chunk_offsets = torch.tensor(offsets, dtype=torch.int32, device=device)
        self.first_chunk = torch.tensor(offsets[:-1], dtype=torch.long, device=device)
        self.has_chunks = torch.tensor([c > 0 for c in counts], dtype=torch.bool, device=device)
        self.dense = cu_seqlens is None and T % C == 0
        if not self.dense:
            idx = torch.full((self.NT * C,), B * T, dtype=torch.long)  # B * T = the appended zero row
            pos = torch.empty(B * T, dtype=torch.long)
            for s, L, c0 in zip(starts, lens, offsets[:-1]):
                idx[c0 * C:c0 * C + L] = torch.arange(s, s + L)
                pos[s:s + L] = torch.arange(c0 * C, c0 * C + L)
            self.idx, self.pos = idx.to(device), pos.to(device)

    def to_chunks(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``[B, T, H, *]`` -> ``[NT, C, H, *]`` (zero-padded), optionally cast."""
        x = x if dtype is None else x.to(dtype)
        flat = x.reshape(self.B * self.T, *x.shape[2:])
        if self.dense:
            return flat.view(self.NT, self.C, *x.shape[2:])
        flat = torch.cat([flat, flat.new_zeros(1, *x.shape[2:])])
        return flat.index_select(0, self.idx).view(self.NT, self.C, *x.shape[2:])

    def from_chunks(self, y: torch.Tensor) -> torch.Tensor:
        """``[NT, C, H, *]`` -> ``[B, T, H, *]`` (padding rows dropped)."""
        flat = y.reshape(self.NT * self.C, *y.shape[2:])
        if not self.dense:
            flat = flat.index_select(0, self.pos)
        return flat.view(self.B, self.T, *y.shape[2:])

    def first_chunk_state(self, per_chunk: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        """Rows of ``per_chunk [NT, ...]`` at each sequence's first chunk; ``fallback [N, ...]`` for empty ones."""
        if self.NT == 0:
            return fallback.clone()
        picked = per_chunk.index_select(0, self.first_chunk.clamp(max=self.NT - 1))
        mask = self.has_chunks.view(-1, *([1] * (per_chunk.dim() - 1)))
        return torch.where(mask, picked, fallback)
