"""Built-in sequence mixers; importing this package registers them all."""
from seqlab.core.blocks import attention, bidirectional, fsmn, mamba, pgn, rnn  # noqa: F401
