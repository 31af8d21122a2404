"""Train / validation / test borders of the standard forecasting protocols.

Both follow Time-Series-Library ``data_provider/data_loader.py``: a split's rows are
``[border1, border2)`` and the validation and test borders start ``seq_len`` rows early, so their first
window's input is the end of the previous split and every target of the split is forecast.
"""
from __future__ import annotations

from seqlab.core.errors import DataError


def ett_borders(n_rows: int, seq_len: int, steps_per_hour: int = 1) -> tuple[list[int], list[int]]:
    """The ETT 12/4/4-month split (Informer / TSLib ``Dataset_ETT_hour`` and ``Dataset_ETT_minute``).

    A month is 30 days; ``steps_per_hour`` is 1 for ETTh and 4 for ETTm (15-minute data).

    Returns:
        ``(border1s, border2s)``, each ``[train, val, test]``.

    Raises:
        DataError: if the series has fewer than 20 months of rows.
    """
    month = 30 * 24 * steps_per_hour
    border1s = [0, 12 * month - seq_len, 12 * month + 4 * month - seq_len]
    border2s = [12 * month, 12 * month + 4 * month, 12 * month + 8 * month]
    if n_rows < border2s[2]:
        raise DataError(f"the ETT 12/4/4-month split needs {border2s[2]} rows at {steps_per_hour} step(s)/hour, "
                        f"the series has {n_rows}; use split='ratio'")
    return border1s, border2s


def ratio_borders(n_rows: int, seq_len: int, ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
                  ) -> tuple[list[int], list[int]]:
    """Chronological ratio split (TSLib ``Dataset_Custom``: 7:1:2; the TPGN paper: 6:2:2).

    ``num_train = int(n * r_train)``, ``num_test = int(n * r_test)``, validation gets the rest.

    Raises:
        DataError: if the ratios are not positive and summing to 1, or a split is empty.
    """
    if len(ratios) != 3 or min(ratios) <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise DataError(f"ratios must be three positive fractions summing to 1, got {tuple(ratios)}")
    num_train = int(n_rows * ratios[0])
    num_test = int(n_rows * ratios[2])
    num_val = n_rows - num_train - num_test
    if min(num_train, num_test, num_val) <= 0:
        raise DataError(f"series of {n_rows} rows is too short for ratio split {tuple(ratios)}")
    border1s = [0, num_train - seq_len, n_rows - num_test - seq_len]
    border2s = [num_train, num_train + num_val, n_rows]
    return border1s, border2s
