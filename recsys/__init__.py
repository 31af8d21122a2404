"""seqlab.recsys: SASRec and swappable sequence backbones for next-item recommendation.

``from seqlab.recsys import SASRec`` needs no Lightning; ``RecsysTask`` and ``RecsysDataModule`` import it lazily.
"""
from seqlab.recsys.data import SequenceSplit, leave_one_out, read_interactions
from seqlab.recsys.losses import full_ce_loss, gbce_beta, sampled_bce_loss
from seqlab.recsys.metrics import RankingAccumulator, full_ranks, metrics_from_ranks, sampled_ranks
from seqlab.recsys.models import SASRec, sasrec

__all__ = ["RankingAccumulator", "RecsysDataModule", "RecsysTask", "SASRec", "SequenceSplit", "full_ce_loss",
           "full_ranks", "gbce_beta", "leave_one_out", "metrics_from_ranks", "read_interactions",
           "sampled_bce_loss", "sampled_ranks", "sasrec"]


def __getattr__(name: str):
    if name == "RecsysTask":
        from seqlab.recsys.task import RecsysTask

        return RecsysTask
    if name == "RecsysDataModule":
        from seqlab.recsys.data.datamodule import RecsysDataModule

        return RecsysDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
