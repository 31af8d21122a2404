"""AR-Net benchmark: the AR-Net paper's sparse small-data experiment (Triebe et al. 2019), several seeds.

AR(3) at lags 1, 3, 10 (0.2, 0.3, -0.5) inside p = 20, unit noise, 1000 training windows; least squares vs
AR-Net with the authors' regulariser, lambda and schedules (``ourownstory/AR-Net`` ``training.py``,
``example.py``), plus the diagnostics of :mod:`seqlab.forecasting.models.arnet_experiment` (oracle, lambda
sensitivity, exact coordinate-wise minimiser). Prints the table (mean / min / max sTPE over seeds, the
paper's values in the header) and writes everything with ``--json``. CPU only, one thread (~2-4 min).

    python benchmarks/forecasting_arnet.py --seeds 10 --json arnet.json
"""
from __future__ import annotations

import torch

if __name__ == "__main__":
    torch.set_num_threads(1)
    from seqlab.forecasting.models.arnet_experiment import main

    main()
