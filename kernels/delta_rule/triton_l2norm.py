"""Row-wise L2 normalisation of q / k for ``delta_rule(..., qk_l2norm=True)``: ``y = x / sqrt(sum(x^2) + eps)``.

The PyTorch form (:func:`~seqlab.kernels.delta_rule.reference.l2norm_reference`) is five elementwise / reduction kernels forward and about eight
backward over a float32 copy of q and k; on the GPU this op is one Triton kernel each way (fla 0.6.0 fuses the same
normalisation: ``fla/modules/l2norm.py``, ``use_qk_l2norm_in_kernel``). Statistics in float32; the forward keeps
only ``rstd = 1 / sqrt(sum(x^2) + eps)`` per row, and the backward is ``dx = rstd (dy - y (y . dy))`` with ``y``
recomputed from ``x`` and ``rstd``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from seqlab.kernels._dispatch import cdiv, next_pow2
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels.delta_rule.reference import L2NORM_EPS as EPS


@triton.jit
def _l2norm_fwd_kernel(x, y, rstd, N, eps, D: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr):
    """One program per ``BR`` rows of ``D`` features."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    cols = tl.arange(0, BD)
    m = (rows < N)[:, None] & (cols < D)[None, :]
    p = rows[:, None] * D + cols[None, :]
    b_x = tl.load(x + p, mask=m, other=0.0).to(tl.float32)
    b_r = 1.0 / tl.sqrt(tl.sum(b_x * b_x, 1) + eps)
    tl.store(y + p, (b_x * b_r[:, None]).to(y.dtype.element_ty), mask=m)
    tl.store(rstd + rows, b_r, mask=rows < N)


@triton.jit
def _l2norm_bwd_kernel(x, rstd, dy, dx, N, D: tl.constexpr, BR: tl.constexpr, BD: tl.constexpr):
    """``dx = rstd (dy - y (y . dy))``, ``y = x rstd``."""
    rows = tl.program_id(0).to(tl.int64) * BR + tl.arange(0, BR)
    cols = tl.arange(0, BD)
    m = (rows < N)[:, None] & (cols < D)[None, :]
    p = rows[:, None] * D + cols[None, :]
    b_r = tl.load(rstd + rows, mask=rows < N, other=0.0)
    b_y = tl.load(x + p, mask=m, other=0.0).to(tl.float32) * b_r[:, None]
    b_dy = tl.load(dy + p, mask=m, other=0.0).to(tl.float32)
    b_dx = b_r[:, None] * (b_dy - b_y * tl.sum(b_y * b_dy, 1)[:, None])
    tl.store(dx + p, b_dx.to(dx.dtype.element_ty), mask=m)


def _blocks(D: int) -> tuple[int, int]:
    BD = max(16, next_pow2(D))
    return max(1, min(64, 4096 // BD)), BD


def _l2norm_op_impl(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton forward: ``(y, rstd [rows] float32)``."""
    D = x.shape[-1]
    N = x.numel() // D if D else 0
    y = torch.empty_like(x)
    rstd = torch.empty(N, device=x.device, dtype=torch.float32)
    if N:
        BR, BD = _blocks(D)
        _l2norm_fwd_kernel[(cdiv(N, BR),)](x, y, rstd, N, eps, D=D, BR=BR, BD=BD, num_warps=4)
    return y, rstd


_l2norm_op = custom_op("seqlab::l2norm", _l2norm_op_impl)


@_l2norm_op.register_fake
def _(x, eps):
    D = x.shape[-1]
    return torch.empty_like(x), x.new_empty(x.numel() // D if D else 0, dtype=torch.float32)


def _l2norm_bwd_op_impl(x: torch.Tensor, rstd: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Triton backward: ``dx``."""
    D = x.shape[-1]
    N = rstd.shape[0]
    dx = torch.empty_like(x)
    if N:
        BR, BD = _blocks(D)
        _l2norm_bwd_kernel[(cdiv(N, BR),)](x, rstd, dy, dx, N, D=D, BR=BR, BD=BD, num_warps=4)
    return dx


_l2norm_bwd_op = custom_op("seqlab::l2norm_bwd", _l2norm_bwd_op_impl)


@_l2norm_bwd_op.register_fake
def _(x, rstd, dy):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1])
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, dy, _drstd):
    x, rstd = ctx.saved_tensors
    return call(_l2norm_bwd_op, x, rstd, dy.contiguous()), None


_l2norm = EagerTwin(_l2norm_op, _setup, _backward)


def l2norm_triton(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Triton L2 normalisation over the last dim of a contiguous ``x`` (CUDA, or CPU under the interpreter)."""
    return _l2norm(x.contiguous(), eps)[0]
