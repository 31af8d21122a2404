"""Readers, leave-one-out splitting and datasets; ``RecsysDataModule`` (Lightning) is imported lazily."""
from seqlab.recsys.data.datasets import EvalTargets, TrainWindows, UserHistories, collate, left_pad, sample_negatives
from seqlab.recsys.data.readers import FORMATS, detect_format, read_interactions, recbole_ml100k_path
from seqlab.recsys.data.split import SequenceSplit, kcore_filter, leave_one_out

__all__ = ["FORMATS", "EvalTargets", "RecsysDataModule", "SequenceSplit", "TrainWindows", "UserHistories",
           "collate", "detect_format", "kcore_filter", "leave_one_out", "left_pad", "read_interactions",
           "recbole_ml100k_path", "sample_negatives"]


def __getattr__(name: str):
    if name == "RecsysDataModule":
        from seqlab.recsys.data.datamodule import RecsysDataModule

        return RecsysDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
