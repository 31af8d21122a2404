"""seqlab.kernels: sequence-scan ops with a PyTorch oracle, a chunked PyTorch form and Triton kernels."""
from seqlab.kernels._dispatch import choose_backend, triton_available
from seqlab.kernels.scan1 import scan1
from seqlab.kernels.simple_gla import simple_gla

__all__ = ["choose_backend", "triton_available", "scan1", "simple_gla"]
