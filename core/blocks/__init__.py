"""Built-in sequence mixers; importing this package registers them all."""
from seqlab.core.blocks import attention, bidirectional, fsmn, gla, mamba, mamba2, pgn, retnet, rnn  # noqa: F401
