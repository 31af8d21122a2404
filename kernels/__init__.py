"""seqlab.kernels: sequence-scan ops with a PyTorch oracle, a chunked PyTorch form and Triton kernels."""
if __name__ != "seqlab.kernels":  # a bare ``import kernels`` with the repo root on sys.path: see _toplevel.py
    from seqlab.kernels._toplevel import hand_over

    hand_over(__name__)
else:
    from seqlab.kernels._dispatch import choose_backend, triton_available
    from seqlab.kernels.causal_conv1d import causal_conv1d
    from seqlab.kernels.delta_rule import delta_rule
    from seqlab.kernels.gla import gla
    from seqlab.kernels.prefix_attention import prefix_attention, prefix_attention_step
    from seqlab.kernels.rms_norm import rms_norm
    from seqlab.kernels.scan1 import scan1
    from seqlab.kernels.simple_gla import simple_gla

    __all__ = ["choose_backend", "triton_available", "scan1", "simple_gla", "gla", "delta_rule", "prefix_attention",
               "prefix_attention_step", "causal_conv1d", "rms_norm"]
