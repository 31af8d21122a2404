"""seqlab.kernels: sequence-scan ops with a PyTorch oracle, a chunked PyTorch form and Triton kernels."""
from seqlab.kernels._dispatch import choose_backend, triton_available
from seqlab.kernels.scan1 import scan1

__all__ = ["choose_backend", "triton_available", "scan1"]
