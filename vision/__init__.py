"""seqlab.vision: LRCN captioning, LION point-cloud detection, pLSTM on 2D grids (pipelines to come)."""
__all__: list[str] = []
