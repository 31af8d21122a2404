"""Normalisation layers shared by the blocks: RMSNorm and the gated RMSNorm of Mamba-2 / GLA / RetNet."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


# Inputs in these dtypes run as ``seqlab.kernels.rms_norm`` (the same PyTorch ops as below on CPU; one fused Triton
# kernel each way on CUDA); float64 keeps the code below. ``SEQLAB_FUSED_NORM=0`` keeps the PyTorch ops on CUDA
# (the Triton norm was checked and timed on an H200 with benchmarks/rms_norm_check.py: rel-RMS 1.7e-3 in bf16,
# fwd+bwd 1.4-3.9x faster than these ops at B*T = 32768, D = 1024 / 2048).
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _use_kernel(x: torch.Tensor) -> bool:
    on_cuda_opted_out = x.device.type == "cuda" and os.environ.get("SEQLAB_FUSED_NORM", "1") == "0"
    return x.dtype in _KERNEL_DTYPES and not on_cuda_opted_out


def _acc(x: torch.Tensor) -> torch.Tensor:
    """Half precisions are normalised in float32; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class RMSNorm(nn.Module):
    """Root-mean-square layer norm over the last dimension (Zhang & Sennrich, 2019).

    ``y = x / sqrt(mean(x^2) + eps) * weight``, computed in float32 for half inputs and cast back to the input dtype.
    float32 / float16 / bfloat16 inputs run as ``seqlab.kernels.rms_norm`` (fused Triton kernels on CUDA unless
    ``SEQLAB_FUSED_NORM=0``).

    Args:
        dim: size of the normalised (last) dimension.
        eps: added to the mean square.
        elementwise_affine: learn a per-channel ``weight`` (initialised to 1).
    """

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"RMSNorm: expected last dimension {self.dim}, got shape {tuple(x.shape)}")
        if _use_kernel(x) and self.dim > 0:
            from seqlab.kernels import rms_norm

            return rms_norm(x.contiguous(), self.weight, eps=self.eps)
        xf = _acc(x)
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is not None:
            y = y * self.weight.to(xf.dtype)
        return y.to(x.dtype)


class GatedRMSNorm(nn.Module):
    """RMSNorm with a SiLU (swish) gate, as in Mamba-2 (``RMSNormGated``) and fla's ``FusedRMSNormGated``.

    ``norm_before_gate=True`` (fla GLA / RetNet / DeltaNet): ``rmsnorm(x) * silu(z)``.
    ``norm_before_gate=False`` (Mamba-2, ``mamba_ssm/ops/triton/layernorm_gated.py``): ``rmsnorm(x * silu(z))``.
    float32 / float16 / bfloat16 inputs (``z`` in ``x``'s dtype) run as ``seqlab.kernels.rms_norm`` (Triton on CUDA
    unless ``SEQLAB_FUSED_NORM=0``).

    Args:
        dim: size of the normalised (last) dimension.
        eps: added to the mean square.
        norm_before_gate: order of normalisation and gating (see above).
    """

    def __init__(self, dim: int, eps: float = 1e-5, norm_before_gate: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape != z.shape or x.shape[-1] != self.dim:
            raise ValueError(
                f"GatedRMSNorm: expected x and z of equal shape [..., {self.dim}], got {tuple(x.shape)} "
                f"and {tuple(z.shape)}")
        if _use_kernel(x) and z.dtype == x.dtype and self.dim > 0:
            from seqlab.kernels import rms_norm

            return rms_norm(x.contiguous(), self.weight, z.contiguous(), eps=self.eps,
                            norm_before_gate=self.norm_before_gate)
        xf, zf = _acc(x), _acc(z)
        if not self.norm_before_gate:
            xf = xf * F.silu(zf)
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(xf.dtype)
        if self.norm_before_gate:
            y = y * F.silu(zf)
        return y.to(x.dtype)
