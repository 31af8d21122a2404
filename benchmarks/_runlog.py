"""Helpers shared by the benchmark scripts that drive ``seqlab fit`` runs and read their run directories."""
from __future__ import annotations

import csv
from pathlib import Path


def val_curve(path: Path) -> list[float]:
    """Validation loss per epoch from a run's ``metrics.csv`` (the sanity-check epoch has no row)."""
    if not path.is_file():
        return []
    rows = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            if r.get("val/loss"):
                rows[int(r["epoch"])] = float(r["val/loss"])
    return [rows[k] for k in sorted(rows)]
