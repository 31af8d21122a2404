"""Depthwise causal short convolution on channels-last ``[B, T, C]``: ``seqlab.kernels.causal_conv1d``.

The short convolution in front of Mamba's SSM and of the q/k/v projections of fla's linear-attention layers
(``ShortConvolution``): ``y[t] = act(bias + sum_j weight[:, j] * xp[t + j])`` with ``xp = concat(cache, x)``
along time. Peers: Dao-AILab ``causal-conv1d`` (CUDA, channels first) and fla's Triton ``causal_conv1d``
(github.com/fla-org/flash-linear-attention, ``fla/modules/convolution.py``), whose kernel structure the
Triton path follows. See :mod:`seqlab.kernels.causal_conv1d.reference` for the PyTorch forms and
:mod:`seqlab.kernels.causal_conv1d.triton_conv` for the kernels. Public entry point: :func:`causal_conv1d`.
"""
from __future__ import annotations

import torch

from seqlab.kernels._checks import (
    Dims,
    check_choice,
    check_cu_seqlens_meta,
    check_cu_seqlens_values,
    check_same_dtype,
    check_tensor,
)
from seqlab.kernels._dispatch import choose_backend
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels.causal_conv1d.reference import (
    ACTIVATIONS,
    causal_conv1d_ref,
    causal_conv1d_shifted,
    causal_conv1d_torch_bwd,
    causal_conv1d_torch_fwd,
    causal_conv1d_varlen_torch_bwd,
    causal_conv1d_varlen_torch_fwd,
)

# The Triton kernels unroll the taps (W^2 shifted tile loads in the SiLU backward); wider kernels take the
# PyTorch form even when the Triton backend is chosen.
MAX_TRITON_W = 16

__all__ = ["causal_conv1d", "causal_conv1d_ref", "causal_conv1d_shifted", "MAX_TRITON_W"]


def _act(activation: str) -> str | None:
    return None if activation == "none" else activation


def _empty(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(0, dtype=torch.float32)


def _conv_fwd_op_impl(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cache: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, activation: str, backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    act = _act(activation)
    check_cu_seqlens_values(cu_seqlens, x.shape[1], allow_empty=True)  # empty sequences allowed
    if backend == "triton" and x.numel() > 0:
        from seqlab.kernels.causal_conv1d.triton_conv import causal_conv1d_fwd

        return causal_conv1d_fwd(x, weight, bias, act, cache, cu_seqlens)
    if cu_seqlens is not None:
        return causal_conv1d_varlen_torch_fwd(x, weight, bias, act, cache, cu_seqlens)
    return causal_conv1d_torch_fwd(x, weight, bias, act, cache)


_conv_fwd_op = custom_op("seqlab::causal_conv1d_fwd", _conv_fwd_op_impl)


@_conv_fwd_op.register_fake
def _(x, weight, bias, cache, cu_seqlens, activation, backend):
    B, _, C = x.shape
    N = B if cu_seqlens is None else cu_seqlens.shape[0] - 1
    return torch.empty_like(x), x.new_empty(N, weight.shape[1] - 1, C)


def _conv_bwd_op_impl(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cache: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, dy: torch.Tensor, dnew_cache: torch.Tensor | None, activation: str,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx, dweight, dbias or an empty tensor, dcache or an empty tensor)``."""
    act = _act(activation)
    if backend == "triton" and x.numel() > 0:
        from seqlab.kernels.causal_conv1d.triton_conv import causal_conv1d_bwd

        dx, dw, db, dc = causal_conv1d_bwd(x, weight, bias, act, cache, dy, dnew_cache, cu_seqlens)
    elif cu_seqlens is not None:
        dx, dw, db, dc = causal_conv1d_varlen_torch_bwd(x, weight, bias, act, cache, cu_seqlens, dy, dnew_cache)
    else:
        dx, dw, db, dc = causal_conv1d_torch_bwd(x, weight, bias, act, cache, dy, dnew_cache)
    return dx, dw, (db if db is not None else _empty(x)), (dc if dc is not None else _empty(x))


_conv_bwd_op = custom_op("seqlab::causal_conv1d_bwd", _conv_bwd_op_impl)


@_conv_bwd_op.register_fake
def _(x, weight, bias, cache, cu_seqlens, dy, dnew_cache, activation, backend):
    return (torch.empty_like(x), torch.empty_like(weight),
            torch.empty_like(bias) if bias is not None else _empty(x),
            torch.empty_like(cache) if cache is not None else _empty(x))


def _setup_context(ctx, inputs, output):
    x, weight, bias, cache, cu_seqlens, activation, backend = inputs
    ctx.save_for_backward(x, weight, bias, cache, cu_seqlens)  # inputs only: the backward recomputes the pre-act.
    ctx.flags = (activation, backend)


def _backward(ctx, dy, dnew_cache):
    x, weight, bias, cache, cu_seqlens = ctx.saved_tensors
    activation, backend = ctx.flags
    dy = torch.zeros_like(x) if dy is None else dy.contiguous()
    dnew_cache = None if dnew_cache is None else dnew_cache.contiguous()
    dx, dw, db, dc = call(_conv_bwd_op, x, weight, bias, cache, cu_seqlens, dy, dnew_cache, activation, backend)
    return dx, dw, (db if bias is not None else None), (dc if cache is not None else None), None, None, None


_conv_fwd = EagerTwin(_conv_fwd_op, _setup_context, _backward)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: str | None = None,
    cache: torch.Tensor | None = None,
    cu_seqlens: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution ``y[b, t, c] = act(bias[c] + sum_j weight[c, j] * xp[b, t + j, c])``.

    ``xp = concat(cache, x)`` along time, so this equals ``F.conv1d`` on ``[B, C, T]`` with left padding
    ``W - 1`` (filled by the cache) and ``groups=C`` (``weight[:, None, :]``), as Mamba's / fla's
    ``ShortConvolution``. Chunked processing is exact: feeding ``new_cache`` of one call as ``cache`` of the
    next gives the same outputs (and gradients) as one call on the concatenation.

    Varlen (``cu_seqlens``): ``x`` ``[1, T, C]`` holds ``N`` sequences back to back, rows
    ``cu_seqlens[n]:cu_seqlens[n + 1]``; each is convolved on its own, as a loop of ``B = 1`` calls with
    ``cache[n:n + 1]`` would be: its first ``W - 1`` outputs see its own cache rows (zeros without a cache), never
    the previous sequence's rows, and ``new_cache[n]`` is the last ``W - 1`` rows of ``concat(cache[n], x_n)``
    (old cache rows for sequences shorter than ``W - 1``; the cache itself for empty ones). The Triton kernels
    find each row's sequence from ``cu_seqlens`` and take halo rows before a sequence start from its cache row.

    Args:
        x: ``[B, T, C]`` float32, float16 or bfloat16, contiguous (channels last; no transposes are made).
        weight: depthwise taps ``[C, W]`` (``W >= 1``, typically 4), any of those float dtypes.
        bias: ``[C]`` or None.
        activation: None or ``"silu"`` (fused after the bias).
        cache: ``[B, W - 1, C]`` in ``x.dtype``: the ``W - 1`` inputs before ``x`` (None = zeros); with
            ``cu_seqlens`` ``[N, W - 1, C]``, one per sequence.
        cu_seqlens: ``[N + 1]`` int32 / int64 offsets of packed sequences (FlashAttention convention: from 0,
            non-decreasing, so empty sequences are allowed, ending at ``T``); needs ``B = 1``. None = dense.
        backend: ``"triton"`` or ``"torch"``; default from ``SEQLAB_KERNEL_BACKEND``, else Triton on CUDA.
            Kernels wider than ``MAX_TRITON_W`` (16) always use the PyTorch form.

    Returns:
        ``(y, new_cache)``: ``y`` ``[B, T, C]`` in ``x.dtype``; ``new_cache`` ``[B, W - 1, C]`` (``[N, W - 1, C]``
        with ``cu_seqlens``) in ``x.dtype``, the last ``W - 1`` rows of ``xp`` (old cache rows included when
        ``T < W - 1``). Both are differentiable:
        gradients flow to ``x``, ``weight``, ``bias`` and ``cache`` (float32 accumulation, results in the input
        dtypes).

    Raises:
        ValueError: on a wrong rank or shape (C mismatch between x / weight / bias / cache, a cache that is not
            ``[B, W - 1, C]``, or ``[N, W - 1, C]`` with ``cu_seqlens``), an unsupported dtype, device mismatch,
            non-contiguous input, an unknown activation or backend, before any launch; bad ``cu_seqlens`` (not
            1-D int32 / int64, ``B > 1``, not starting at 0, decreasing, not ending at ``T``): the value checks
            run in the op's eager implementation (one host sync), so under ``torch.compile`` at run time.
    """
    dims = Dims()
    check_tensor(x, "x", "B T C", dims)
    check_tensor(weight, "weight", "C W", dims)
    if dims["W"] < 1:
        raise ValueError(f"weight must have shape [C, W] with W >= 1 taps, got {list(weight.shape)}")
    check_tensor(bias, "bias", "C", dims, optional=True)
    dims.sizes["W-1"], dims.bound_by["W-1"] = dims["W"] - 1, "weight"
    dims.sizes["N"] = check_cu_seqlens_meta(cu_seqlens, dims)
    dims.bound_by["N"] = "cu_seqlens" if cu_seqlens is not None else "x (batch size)"
    check_tensor(cache, "cache", "B W-1 C" if cu_seqlens is None else "N W-1 C", dims, optional=True)
    check_same_dtype({"x": x, "cache": cache})
    check_choice(activation, "activation", ACTIVATIONS)
    be = choose_backend(x, weight, bias, cache, backend=backend)
    if be == "triton" and dims["W"] > MAX_TRITON_W:
        be = "torch"
    return _conv_fwd(x, weight, bias, cache, cu_seqlens, activation or "none", be)
