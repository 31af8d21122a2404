"""Fused RMSNorm / gated RMSNorm over the last dim: ``seqlab.kernels.rms_norm``.

The output norm of Mamba-2 (``rmsnorm(y * silu(z))``) and of fla's GLA / RetNet / DeltaNet layers
(``rmsnorm(o) * silu(g)``), and the plain RMSNorm of the backbones. Peers: fla's ``FusedRMSNormGated``
(github.com/fla-org/flash-linear-attention, ``fla/modules/fused_norm_gate.py``) and mamba_ssm's ``RMSNormGated``
(github.com/state-spaces/mamba, ``mamba_ssm/ops/triton/layernorm_gated.py``). The math is that of
``seqlab.core.layers.norm`` (see :mod:`seqlab.kernels.rms_norm.reference`); the Triton kernels
(:mod:`seqlab.kernels.rms_norm.triton_norm`) are one launch each way, saving only ``rstd`` per row.
Public entry point: :func:`rms_norm`.
"""
from __future__ import annotations

import math

import torch

from seqlab.kernels._checks import FLOAT_DTYPES, Dims, check_same_dtype, check_tensor
from seqlab.kernels._dispatch import choose_backend
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels.rms_norm.reference import rms_norm_ref

__all__ = ["rms_norm", "rms_norm_ref", "max_triton_d"]

TORCH_DTYPES: tuple[torch.dtype, ...] = FLOAT_DTYPES + (torch.float64,)


def max_triton_d(dtype: torch.dtype) -> int:
    """Widest last dim the Triton kernels take (a row of 64 KiB, as fla's limit); wider rows use PyTorch."""
    return 65536 // dtype.itemsize


def _empty(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(0, dtype=torch.float32)


def _rms_norm_fwd_op_impl(
    x: torch.Tensor, weight: torch.Tensor | None, z: torch.Tensor | None, eps: float, norm_before_gate: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton forward: ``(y, rstd [rows] float32)``."""
    from seqlab.kernels.rms_norm.triton_norm import rms_norm_fwd

    return rms_norm_fwd(x, weight, z, eps, norm_before_gate)


_rms_norm_fwd_op = custom_op("seqlab::rms_norm_fwd", _rms_norm_fwd_op_impl)


@_rms_norm_fwd_op.register_fake
def _(x, weight, z, eps, norm_before_gate):
    return torch.empty_like(x), x.new_empty(x.numel() // x.shape[-1], dtype=torch.float32)


def _rms_norm_bwd_op_impl(
    x: torch.Tensor, weight: torch.Tensor | None, z: torch.Tensor | None, rstd: torch.Tensor, dy: torch.Tensor,
    norm_before_gate: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: ``(dx, dweight or an empty tensor, dz or an empty tensor)``."""
    from seqlab.kernels.rms_norm.triton_norm import rms_norm_bwd

    dx, dw, dz = rms_norm_bwd(x, weight, z, rstd, dy, norm_before_gate)
    return dx, (dw if dw is not None else _empty(x)), (dz if dz is not None else _empty(x))


_rms_norm_bwd_op = custom_op("seqlab::rms_norm_bwd", _rms_norm_bwd_op_impl)


@_rms_norm_bwd_op.register_fake
def _(x, weight, z, rstd, dy, norm_before_gate):
    return (torch.empty_like(x), torch.empty_like(weight) if weight is not None else _empty(x),
            torch.empty_like(z) if z is not None else _empty(x))


def _setup_context(ctx, inputs, output):
    x, weight, z, _eps, norm_before_gate = inputs
    ctx.save_for_backward(x, weight, z, output[1])
    ctx.norm_before_gate = norm_before_gate
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, dy, _drstd):
    x, weight, z, rstd = ctx.saved_tensors
    dy = torch.zeros_like(x) if dy is None else dy.contiguous()
    dx, dw, dz = call(_rms_norm_bwd_op, x, weight, z, rstd, dy, ctx.norm_before_gate)
    return dx, (dw if weight is not None else None), (dz if z is not None else None), None, None


_rms_norm_fwd = EagerTwin(_rms_norm_fwd_op, _setup_context, _backward)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    norm_before_gate: bool = True,
    backend: str | None = None,
) -> torch.Tensor:
    """RMSNorm over the last dim, optionally gated by ``silu(z)``.

    * ``z`` None: ``y = x / sqrt(mean(x^2) + eps) * weight``
    * ``norm_before_gate=True``: ``y = rmsnorm(x) * weight * silu(z)`` (fla GLA / RetNet / DeltaNet)
    * ``norm_before_gate=False``: ``y = rmsnorm(x * silu(z)) * weight`` (Mamba-2)

    The same math as ``seqlab.core.layers.norm.RMSNorm`` / ``GatedRMSNorm``: statistics in float32 for half
    inputs, ``y`` in ``x.dtype``.

    Args:
        x: ``[..., D]`` (at least 1 dim, ``D >= 1``), float32, float16 or bfloat16 (float64 on the PyTorch path),
            contiguous.
        weight: ``[D]`` scale in any float dtype, or None (no scale).
        z: gate of ``x``'s shape and dtype, contiguous, or None (no gate).
        eps: added to the mean square (a finite number >= 0).
        norm_before_gate: order of normalisation and gating when ``z`` is given (ignored without ``z``).
        backend: ``"triton"`` or ``"torch"``; default from ``SEQLAB_KERNEL_BACKEND``, else Triton on CUDA.
            float64 inputs, and rows wider than :func:`max_triton_d` (16384 float32 / 32768 half elements),
            always take the PyTorch form.

    Returns:
        ``y`` of ``x``'s shape and dtype, differentiable with respect to ``x``, ``weight`` and ``z`` (float32
        accumulation; gradients in the dtypes of the inputs). The Triton backward sums ``dweight`` from
        per-program float32 partials (deterministic).

    Raises:
        ValueError: naming the argument, on a non-tensor or 0-dim ``x``, an empty last dim, a ``weight`` that
            is not ``[D]``, a ``z`` whose shape or dtype differs from ``x``, an unsupported dtype, a device
            mismatch, non-contiguous ``x`` / ``z``, a bad ``eps`` / ``norm_before_gate``, or an unknown backend,
            before any launch.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape [..., D], got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"x must have at least 1 dim [..., D], got shape {list(x.shape)}")
    dims = Dims()
    spec = " ".join([f"S{i}" for i in range(x.dim() - 1)] + ["D"])
    check_tensor(x, "x", spec, dims, dtypes=TORCH_DTYPES)
    if dims["D"] < 1:
        raise ValueError(f"x must have a non-empty last dim D >= 1, got shape {list(x.shape)}")
    check_tensor(weight, "weight", "D", dims, dtypes=TORCH_DTYPES, optional=True, contiguous=False)
    check_tensor(z, "z", spec, dims, dtypes=TORCH_DTYPES, optional=True)
    check_same_dtype({"x": x, "z": z})
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if not isinstance(norm_before_gate, bool):
        raise ValueError(f"norm_before_gate must be a bool, got {norm_before_gate!r}")
    be = choose_backend(x, weight, z, backend=backend)
    if be == "triton" and (x.dtype == torch.float64 or dims["D"] > max_triton_d(x.dtype)):
        be = "torch"
    if be == "torch":
        return rms_norm_ref(x, weight, z, eps, norm_before_gate)
    return _rms_norm_fwd(x, weight if weight is None else weight.contiguous(), z, float(eps),
                            norm_before_gate)[0]
