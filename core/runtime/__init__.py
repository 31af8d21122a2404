"""The training runtime: config -> model, data, task -> lightning.Trainer, in a fresh run directory."""
from seqlab.core.runtime.run import (
    Components,
    RunResult,
    build,
    check,
    fit,
    load_checkpoint,
    make_trainer,
    predict,
    test,
)

__all__ = ["Components", "RunResult", "build", "check", "fit", "load_checkpoint", "make_trainer", "predict", "test"]
