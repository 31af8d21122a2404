"""AR-Net benchmark: the AR-Net paper's sparse small-data experiment (Triebe et al. 2019), many seeds.

AR(3) at lags 1, 3, 10 (0.2, 0.3, -0.5) inside p = 20, unit noise, laid out as ``ourownstory/AR-Net``
``data_loader.init_ar_dataset`` does (1250 windows of one 1270-step draw, first 1000 train, last 250 test);
least squares vs AR-Net with the authors' regulariser, lambda and loop (``training.py``) under ``example.py``'s
train_config verbatim, step-matched to 1000 windows, and a faster non-authors' schedule, plus the diagnostics
of :mod:`seqlab.forecasting.models.arnet_experiment` (oracle, lambda sensitivity, exact coordinate-wise
minimiser). ``--noise-scaled-lambda`` adds rows with the authors' v1.0 lambda ``0.02 * est_noise * (1/s - 1)``.
Prints sTPE mean +- s.e.m., median and 10th-90th percentile over seeds (the paper's values in the header),
test MSE, and writes everything with ``--json``. CPU only, one thread (~2-4 min for 50 seeds).

    python benchmarks/forecasting_arnet.py --seeds 50 --json arnet.json
    python benchmarks/forecasting_arnet.py --seeds 50 --noise-scaled-lambda --json arnet.json
"""
from __future__ import annotations

import torch

if __name__ == "__main__":
    torch.set_num_threads(1)
    from seqlab.forecasting.models.arnet_experiment import main

    main()
