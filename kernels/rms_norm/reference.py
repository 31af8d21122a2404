"""PyTorch form of the (gated) RMSNorm over the last dim: the oracle and the CPU path of ``seqlab.kernels.rms_norm``.

With ``s = silu(z)`` and ``r(u) = 1 / sqrt(mean(u^2) + eps)`` over the last dim ``D``::

    z None:                          y = x r(x) weight
    z given, norm_before_gate=True:  y = x r(x) weight s          (fla FusedRMSNormGated, GLA / RetNet / DeltaNet)
    z given, norm_before_gate=False: y = u r(u) weight, u = x s   (Mamba-2 RMSNormGated)

(``weight`` None means 1.) Half inputs are normalised in float32, float32 and float64 stay as they are, ``y``
comes back in ``x.dtype``: the same operations, in the same order, as ``seqlab.core.layers.norm`` (RMSNorm,
GatedRMSNorm), so autograd through :func:`rms_norm_ref` gives the gradients of those layers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _acc(x: torch.Tensor) -> torch.Tensor:
    """Half precisions in float32; float32 and float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def rms_norm_ref(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    eps: float = 1e-5,
    norm_before_gate: bool = True,
) -> torch.Tensor:
    """(Gated) RMSNorm over the last dim, differentiable through autograd (x, weight and z).

    Args:
        x: ``[..., D]``.
        weight: ``[D]`` or None (no scale).
        z: gate of ``x``'s shape or None (no gate).
        eps: added to the mean square.
        norm_before_gate: ``rmsnorm(x) * silu(z)`` when True, ``rmsnorm(x * silu(z))`` when False.

    Returns:
        ``y`` of ``x``'s shape and dtype.
    """
    xf = _acc(x)
    zf = None if z is None else _acc(z)
    if zf is not None and not norm_before_gate:
        xf = xf * F.silu(zf)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.to(xf.dtype)
    if zf is not None and norm_before_gate:
        y = y * F.silu(zf)
    return y.to(x.dtype)
