"""seqlab.audio: MossFormer2 speech separation (pipeline to come)."""
__all__: list[str] = []
