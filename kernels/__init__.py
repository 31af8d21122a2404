"""seqlab.kernels: sequence-scan ops with a PyTorch oracle, a chunked PyTorch form and Triton kernels."""
from seqlab.kernels._dispatch import choose_backend, triton_available
from seqlab.kernels.scan1 import scan1
from seqlab.kernels.simple_gla import simple_gla

__all__ = ["choose_backend", "triton_available", "scan1", "simple_gla"]
from seqlab.kernels.delta_rule import delta_rule  # noqa: E402
from seqlab.kernels.gla import gla  # noqa: E402
from seqlab.kernels.prefix_attention import prefix_attention, prefix_attention_step  # noqa: E402

__all__ += ["gla", "delta_rule", "prefix_attention", "prefix_attention_step"]
from seqlab.kernels.causal_conv1d import causal_conv1d  # noqa: E402

__all__ += ["causal_conv1d"]
from seqlab.kernels.rms_norm import rms_norm  # noqa: E402

__all__ += ["rms_norm"]
