"""seqlab.graphs: GSM++ graph sequence models (pipeline to come)."""
__all__: list[str] = []
