"""The AR-Net paper's sparse small-data experiment: AR-Net vs least squares, sTPE of the coefficients.

AR(3) at lags 1, 3, 10 (0.2, 0.3, -0.5) inside p = 20 lags, unit noise, ``n_train`` training windows;
AR-Net trained by :func:`~seqlab.forecasting.models.arnet.fit_arnet` with ``lambda = 0.02 (1/s - 1)``,
``s = 3/20``; classic AR by closed-form least squares on the same windows. Prints one row per seed and the
means; ``--json PATH`` writes them.

    python -m seqlab.forecasting.models.arnet_experiment --seeds 5
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from seqlab.forecasting.data.synthetic_ar import PAPER_SPARSE_AR, ar_windows, sparse_ar_process, stpe
from seqlab.forecasting.models.arnet import ARNet, ClassicAR, fit_arnet


def run(seed: int, n_train: int = 1000, n_lags: int = 20, epochs: int = 200, batch_size: int = 32,
        lr: float = 3e-3, lr_decay: float = 0.97, lambda_delay_epochs: int = 20) -> dict[str, float]:
    """One seed: sTPE of AR-Net and of least squares, and AR-Net's training time."""
    series, true = sparse_ar_process(n_train + n_lags, PAPER_SPARSE_AR, n_lags=n_lags, seed=seed)
    x, y = ar_windows(series, n_lags)
    ls = ClassicAR(n_lags).fit(torch.tensor(series)).ar_coefficients[0].numpy()
    torch.manual_seed(seed)
    model = ARNet(n_lags, sparsity=3 / n_lags, lambda_delay_epochs=lambda_delay_epochs)
    start = time.perf_counter()
    fit_arnet(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay, seed=seed)
    seconds = time.perf_counter() - start
    return {"seed": seed, "stpe_arnet": stpe(model.ar_coefficients[0].numpy(), true),
            "stpe_least_squares": stpe(ls, true), "train_seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    rows = [run(s, n_train=a.n_train, epochs=a.epochs) for s in range(a.seeds)]
    print(f"{'seed':>4} {'sTPE AR-Net':>12} {'sTPE LS':>9} {'train s':>8}")
    for r in rows:
        print(f"{r['seed']:>4} {r['stpe_arnet']:>12.2f} {r['stpe_least_squares']:>9.2f} {r['train_seconds']:>8.1f}")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("stpe_arnet", "stpe_least_squares")}
    print(f"mean {mean['stpe_arnet']:>12.2f} {mean['stpe_least_squares']:>9.2f}")
    if a.json is not None:
        a.json.write_text(json.dumps({"rows": rows, "mean": mean, "args": vars(a) | {"json": str(a.json)}},
                                     indent=2))


if __name__ == "__main__":
    main()
