"""Plain ``nn.Module`` recommenders (no Lightning)."""
from seqlab.recsys.models.sasrec import SASRec, SASRecBlock, sasrec

__all__ = ["SASRec", "SASRecBlock", "sasrec"]
