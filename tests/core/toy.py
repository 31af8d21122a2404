"""A tiny regression pipeline for runtime tests: CSV of features x0..x2 and target y, a linear model."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from seqlab.core.errors import DataError
from torch.utils.data import DataLoader, TensorDataset


def write_csv(path: str | Path, n: int = 256, seed: int = 0) -> Path:
    """Write a noisy linear dataset y = x @ [1, -2, 0.5] + 0.3."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.01 * rng.normal(size=n)
    path = Path(path)
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y}).to_csv(path, index=False)
    return path


class ToyData(L.LightningDataModule):
    """Reads the CSV; 60/20/20 split; checks the file exists and holds no NaN."""

    def __init__(self, path: str, batch_size: int = 32):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"data file not found: {self.path}")
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        df = pd.read_csv(self.path)
        if df.isna().any().any():
            raise DataError(f"{self.path}: NaN in column {df.columns[df.isna().any()].tolist()[0]!r}")
        x = torch.tensor(df[["x0", "x1", "x2"]].values, dtype=torch.float32)
        y = torch.tensor(df[["y"]].values, dtype=torch.float32)
        n = len(df)
        a, b = int(0.6 * n), int(0.8 * n)
        self.parts = {"fit": TensorDataset(x[:a], y[:a]), "val": TensorDataset(x[a:b], y[a:b]),
                      "test": TensorDataset(x[b:], y[b:])}

    def train_dataloader(self):
        return DataLoader(self.parts["fit"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.parts["val"], batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.parts["test"], batch_size=self.batch_size)

    def predict_dataloader(self):
        return self.test_dataloader()


class ToyTask(L.LightningModule):
    """MSE regression; writes ``rank<k>.done`` into the run dir at the end of fit (for the DDP test)."""

    def __init__(self, model: torch.nn.Module, lr: float = 0.05):
        super().__init__()
        self.model = model
        self.lr = lr

    def _loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.model(x), y)

    def training_step(self, batch, _):
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, _):
        self.log("val/loss", self._loss(batch), sync_dist=True)

    def test_step(self, batch, _):
        self.log("test/mse", self._loss(batch), sync_dist=True)

    def predict_step(self, batch, _):
        return self.model(batch[0])

    def on_fit_end(self):
        run_dir = os.environ.get("SEQLAB_RUN_DIR")
        if run_dir:
            Path(run_dir, f"rank{self.global_rank}.done").write_text(str(self.trainer.world_size))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def save_artifacts(self, run_dir, datamodule, stage):
        path = Path(run_dir) / "weights.txt"
        path.write_text(" ".join(f"{w:.3f}" for w in self.model.weight.detach().flatten().tolist()))
        return [path]

    def write_predictions(self, predictions, run_dir, datamodule):
        path = Path(run_dir) / "predictions.csv"
        pd.DataFrame({"y_hat": torch.cat(predictions).flatten().numpy()}).to_csv(path, index=False)
        return [path]
