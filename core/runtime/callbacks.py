"""Callbacks the runtime adds to every fit."""
from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Measures training samples per second over all ranks, skipping the first epoch (warm-up, compilation).

    After fit, ``samples_per_s`` holds the figure (NaN when fewer than two epochs ran) and ``epoch_seconds``
    the wall time of each epoch.
    """

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.epoch_samples: list[int] = []
        self._t0 = 0.0
        self._n = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()
        self._n = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._n += _batch_size(batch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.epoch_seconds.append(time.perf_counter() - self._t0)
        self.epoch_samples.append(self._n * trainer.world_size)

    @property
    def samples_per_s(self) -> float:
        secs, samples = self.epoch_seconds[1:], self.epoch_samples[1:]
        return sum(samples) / sum(secs) if secs and sum(secs) > 0 else float("nan")


def _batch_size(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 0
