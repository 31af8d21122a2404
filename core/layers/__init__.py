"""Shared layers of the blocks: norms, the causal short convolution, rotary embedding, MLPs."""
from seqlab.core.layers.conv import ShortConvolution
from seqlab.core.layers.mlp import MLP, SwiGLU
from seqlab.core.layers.norm import GatedRMSNorm, RMSNorm
from seqlab.core.layers.rotary import RotaryEmbedding

__all__ = ["MLP", "GatedRMSNorm", "RMSNorm", "RotaryEmbedding", "ShortConvolution", "SwiGLU"]
