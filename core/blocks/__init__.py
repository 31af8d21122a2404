"""Built-in sequence mixers; importing this package registers them all."""
from seqlab.core.blocks import (  # noqa: F401
    aaren,
    attention,
    bidirectional,
    deltanet,
    fsmn,
    gla,
    mamba,
    mamba2,
    pgn,
    retnet,
    rnn,
)
