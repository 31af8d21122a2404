"""seqlab.core: the shared sequence-mixer interface, block registry, blocks, layers and backbone.

Importing this package stays light (torch only: no lightning, no triton at module level).
"""
from seqlab.core.backbone import SequenceBackbone
from seqlab.core.errors import CheckpointError, ConfigError, DataError, SeqlabError
from seqlab.core.interface import RecurrentMixer, SequenceMixer
from seqlab.core.registry import (
    create_block,
    create_model,
    get_block_class,
    list_blocks,
    list_models,
    register_block,
    register_model,
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "RecurrentMixer",
    "SeqlabError",
    "SequenceBackbone",
    "SequenceMixer",
    "create_block",
    "create_model",
    "get_block_class",
    "list_blocks",
    "list_models",
    "register_block",
    "register_model",
]
