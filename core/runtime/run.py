"""Build model, data and task from a config and drive a ``lightning.Trainer`` (fit, test, predict, check).

The task receives the model (composition): ``task = instantiate(cfg.task, model=model)``. Optional task
attributes and hooks: ``monitor`` (default ``"val/loss"``), ``monitor_mode`` (``"min"``), and
``save_artifacts(run_dir, datamodule, stage)`` / ``write_predictions(predictions, run_dir, datamodule)``,
called on rank 0 after test / predict to write plots and CSVs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig
from seqlab.core.config import instantiate, to_yaml
from seqlab.core.errors import CheckpointError, ConfigError, SeqlabError
from seqlab.core.runtime.callbacks import Throughput
from seqlab.core.runtime.rundir import mark_failed, new_run_dir, release_run_dir, write_status


@dataclass
class Components:
    """What a config builds."""

    cfg: DictConfig
    model: torch.nn.Module
    data: L.LightningDataModule
    task: L.LightningModule


def build(cfg: DictConfig) -> Components:
    """Seed everything, then instantiate ``model``, ``data`` and ``task`` (the task receives the model)."""
    L.seed_everything(int(cfg.get("seed", 0) or 0), workers=True, verbose=False)
    model = instantiate(cfg.model)
    data = instantiate(cfg.data)
    task = instantiate(cfg.task, model=model)
    if not isinstance(task, L.LightningModule):
        raise ConfigError(f"task._target_ must build a lightning.LightningModule, got {type(task).__name__}")
    return Components(cfg, model, data, task)


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The ``trainer`` section as keyword arguments; ``_target_`` nodes (callbacks, loggers) are built."""
    section = cfg.get("trainer") or {}
    return dict(instantiate(section)) if isinstance(section, DictConfig) else dict(section)


def make_trainer(cfg: DictConfig, task: L.LightningModule, run_dir: Path | None, **override: Any) -> L.Trainer:
    """A ``lightning.Trainer`` from the config, logging CSV metrics and keeping the best checkpoint."""
    kw = trainer_kwargs(cfg)
    extra_callbacks = override.pop("callbacks", [])
    kw.update(override)
    callbacks = list(kw.pop("callbacks", []) or []) + list(extra_callbacks or [])
    if run_dir is not None:
        monitor = getattr(task, "monitor", "val/loss")
        callbacks.append(ModelCheckpoint(
            dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
            mode=getattr(task, "monitor_mode", "min"), save_top_k=1 if monitor else 0,
            save_last=monitor is None, auto_insert_metric_name=False))
        kw.setdefault("logger", CSVLogger(save_dir=str(run_dir), name="", version=""))
        kw.setdefault("default_root_dir", str(run_dir))
    else:
        kw.setdefault("logger", False)
        kw.setdefault("enable_checkpointing", False)
    try:
        return L.Trainer(callbacks=callbacks, **kw)
    except TypeError as e:
        raise ConfigError(f"trainer: {e}") from None
    except (ValueError, lightning_misconfig()) as e:
        raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None


def lightning_misconfig() -> type[Exception]:
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    return MisconfigurationException


def check(cfg: DictConfig) -> Components:
    """Instantiate every section on CPU (model, data, task and the trainer arguments) and return them."""
    comps = build(cfg)
    make_trainer(cfg, comps.task, None, accelerator="cpu", devices=1, strategy="auto", num_nodes=1,
                 enable_progress_bar=False, enable_model_summary=False)
    return comps


@dataclass
class RunResult:
    """Where a run went and what it measured."""

    run_dir: Path
    metrics: dict[str, float]
    artifacts: list[Path]
    best_checkpoint: Path | None = None


def fit(cfg: DictConfig, name: str, runs_root: str | Path = "runs") -> RunResult:
    """Train, then test the best checkpoint; write config, metrics, checkpoint and plots to a new run dir."""
    comps = build(cfg)
    return _in_run_dir(cfg, name, runs_root, "fit", lambda run_dir: _fit(comps, run_dir))


def test(cfg: DictConfig, name: str, ckpt: str | Path, runs_root: str | Path = "runs") -> RunResult:
    """Restore ``ckpt`` into the model the config builds and run the test loop in a new run dir."""
    comps = build(cfg)
    load_checkpoint(comps.task, ckpt)
    return _in_run_dir(cfg, name, runs_root, "test", lambda run_dir: _test(comps, run_dir, ckpt))


def predict(cfg: DictConfig, name: str, ckpt: str | Path, runs_root: str | Path = "runs") -> RunResult:
    """Restore ``ckpt`` and write the task's predictions (CSV, plots) into a new run dir."""
    comps = build(cfg)
    load_checkpoint(comps.task, ckpt)
    return _in_run_dir(cfg, name, runs_root, "predict", lambda run_dir: _predict(comps, run_dir, ckpt))


def load_checkpoint(task: L.LightningModule, ckpt: str | Path) -> None:
    """Load a Lightning checkpoint's weights into ``task`` strictly.

    Raises:
        CheckpointError: missing or unreadable file, or weights that do not match the config's model.
    """
    path = Path(ckpt)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  (any unpickling failure means a bad file)
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    state = blob.get("state_dict") if isinstance(blob, dict) else None
    if state is None:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    own = task.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[0]!r}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[0]!r}")
        if shapes:
            k = shapes[0]
            parts.append(f"shape mismatch at {k!r}: checkpoint {tuple(state[k].shape)} vs config "
                         f"{tuple(own[k].shape)}")
        raise CheckpointError(f"checkpoint {path} does not match the config: " + "; ".join(parts))
    task.load_state_dict(state, strict=True)


def _in_run_dir(cfg: DictConfig, name: str, runs_root, stage: str, body) -> RunResult:
    run_dir = new_run_dir(runs_root, name)
    is_rank0 = _rank() == 0
    try:
        if is_rank0:
            (run_dir / "config.yaml").write_text(to_yaml(cfg))
        result = body(run_dir)
    except BaseException as e:
        if is_rank0:
            mark_failed(run_dir, f"{type(e).__name__}: {e}")
        release_run_dir()
        raise
    if is_rank0:
        (run_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2, sort_keys=True))
        write_status(run_dir, "completed", stage=stage,
                     best_checkpoint=str(result.best_checkpoint) if result.best_checkpoint else None)
    release_run_dir()
    _shutdown_distributed()
    return result


def _shutdown_distributed() -> None:
    """Leave the default process group (if this process joined one) once a stage has finished on every rank.

    Lightning leaves it up; gloo's threads then outlive the interpreter and can abort the process at exit
    ("terminate called without an active exception", exit code -6, seen once in the CPU DDP test). A later
    stage in the same process re-creates the group through Lightning.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _fit(comps: Components, run_dir: Path) -> RunResult:
    throughput = Throughput()
    trainer = make_trainer(comps.cfg, comps.task, run_dir, callbacks=[throughput])
    t0 = time.perf_counter()
    trainer.fit(comps.task, datamodule=comps.data)
    fit_seconds = time.perf_counter() - t0
    ckpt_cb = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best = Path(ckpt_cb.best_model_path or ckpt_cb.last_model_path) if ckpt_cb else None
    if best is not None and not best.is_file():
        best = None
    tested = trainer.test(comps.task, datamodule=comps.data, ckpt_path=str(best) if best else None,
                          verbose=False)
    metrics = _floats(tested[0] if tested else {})
    metrics["fit_seconds"] = fit_seconds
    metrics["epochs"] = float(trainer.current_epoch)
    metrics["train_samples_per_s"] = throughput.samples_per_s
    metrics["world_size"] = float(trainer.world_size)
    artifacts = _artifacts(comps, run_dir, trainer, "test")
    return RunResult(run_dir, metrics, artifacts, best)


def _test(comps: Components, run_dir: Path, ckpt) -> RunResult:
    trainer = make_trainer(comps.cfg, comps.task, run_dir)
    tested = trainer.test(comps.task, datamodule=comps.data, verbose=False)
    return RunResult(run_dir, _floats(tested[0] if tested else {}), _artifacts(comps, run_dir, trainer, "test"),
                     Path(ckpt))


def _predict(comps: Components, run_dir: Path, ckpt) -> RunResult:
    trainer = make_trainer(comps.cfg, comps.task, run_dir)
    outputs = trainer.predict(comps.task, datamodule=comps.data)
    artifacts: list[Path] = []
    hook = getattr(comps.task, "write_predictions", None)
    if trainer.is_global_zero and hook is not None:
        artifacts = list(hook(outputs or [], run_dir, comps.data) or [])
    return RunResult(run_dir, {}, [Path(a) for a in artifacts], Path(ckpt))


def _artifacts(comps: Components, run_dir: Path, trainer: L.Trainer, stage: str) -> list[Path]:
    hook = getattr(comps.task, "save_artifacts", None)
    if hook is None or not trainer.is_global_zero:
        return []
    return [Path(p) for p in (hook(run_dir, comps.data, stage) or [])]


def _floats(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        v = float(v.item() if hasattr(v, "item") else v)
        out[k] = v if math.isfinite(v) else float("nan")
    return out


def _rank() -> int:
    import os

    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


__all__ = ["Components", "RunResult", "build", "check", "fit", "test", "predict", "load_checkpoint",
           "make_trainer", "SeqlabError"]
