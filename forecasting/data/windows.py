"""Sliding-window dataset over a scaled multivariate series."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowDataset(Dataset):
    """Windows ``x = data[s : s+L]``, ``y = data[s+L : s+L+H]`` for ``s`` in ``[begin, end-L-H]`` by ``stride``.

    Args:
        data: scaled values ``[N, C]``.
        marks: calendar features ``[N, F]`` (F may be 0).
        begin: first row of the segment (a split's ``border1``).
        end: one past its last row (``border2``).
        seq_len: lookback L.
        pred_len: horizon H.
        stride: step between window starts (1 for train/val/test; H for non-overlapping prediction).

    Items are dicts: ``x [L, C]``, ``y [H, C]``, ``x_mark [L, F]``, ``y_mark [H, F]``, ``start`` (row of the
    window's first input in the whole series).
    """

    def __init__(self, data: np.ndarray, marks: np.ndarray, begin: int, end: int, seq_len: int, pred_len: int,
                 stride: int = 1) -> None:
        self.data = torch.as_tensor(np.ascontiguousarray(data), dtype=torch.float32)
        self.marks = torch.as_tensor(np.ascontiguousarray(marks), dtype=torch.float32)
        self.begin, self.end, self.seq_len, self.pred_len, self.stride = begin, end, seq_len, pred_len, stride
        span = end - begin - seq_len - pred_len
        self.starts = list(range(begin, begin + span + 1, stride)) if span >= 0 else []

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.starts[i]
        m = s + self.seq_len
        e = m + self.pred_len
        return {"x": self.data[s:m], "y": self.data[m:e], "x_mark": self.marks[s:m], "y_mark": self.marks[m:e],
                "start": torch.tensor(s)}
