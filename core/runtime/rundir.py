"""Run directories: ``runs/<config-name>/<timestamp>/``, never reused, with an honest status file."""
from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

RUN_DIR_ENV = "SEQLAB_RUN_DIR"  # set by rank 0 so DDP worker processes write into the same directory
STATUS_FILE = "status.json"


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create and return a fresh ``root/name/<YYYYmmdd-HHMMSS>[-N]`` directory.

    When ``SEQLAB_RUN_DIR`` is set (a DDP worker started by Lightning's launcher), that directory is
    returned instead, so every rank writes into the one run.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        path = Path(inherited)
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        os.environ[RUN_DIR_ENV] = str(path.resolve())
        write_status(path, "running")
        return path
    raise RuntimeError(f"could not create a new run directory under {base}")


def write_status(run_dir: Path, status: str, **extra) -> None:
    """Write ``status.json`` (``running``, ``completed`` or ``failed``) atomically."""
    payload = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    tmp = run_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(run_dir / STATUS_FILE)


def mark_failed(run_dir: Path, message: str) -> Path:
    """Mark a run as failed: status ``failed`` and the directory renamed to ``<name>-failed``."""
    write_status(run_dir, "failed", error=message)
    target = run_dir.with_name(run_dir.name + "-failed")
    try:
        if target.exists():
            shutil.rmtree(target)
        run_dir.rename(target)
    except OSError:
        return run_dir
    return target


def release_run_dir() -> None:
    """Forget the inherited run directory (after a run ends in this process)."""
    os.environ.pop(RUN_DIR_ENV, None)
