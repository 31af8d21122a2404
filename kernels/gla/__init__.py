"""Gated linear attention with a vector (per key channel) log decay: ``seqlab.kernels.gla``.

See :mod:`seqlab.kernels.gla.reference` for the math and :mod:`seqlab.kernels.gla.triton_chunk` for the GPU
kernels. Public entry point: :func:`gla`.
"""
from __future__ import annotations

import torch

from seqlab.kernels._checks import (
    STATE_DTYPES,
    Dims,
    check_choice,
    check_cu_seqlens_meta,
    check_cu_seqlens_values,
    check_same_dtype,
    check_tensor,
)
from seqlab.kernels._dispatch import choose_backend
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels.gla.reference import gla_chunked, gla_naive
from seqlab.kernels._segments import flip_time, per_sequence, reverse_index

MODES = ("chunk", "fused_recurrent", "naive")
_CHUNK = 64  # chunk length of the Triton path (kernels/gla/triton_chunk.py CHUNK)

__all__ = ["gla", "MODES"]


def _torch_forward(q, k, v, g, h0, cu_seqlens, scale, mode, output_final_state):
    check_cu_seqlens_values(cu_seqlens, q.shape[1])
    fn = gla_naive if mode in ("naive", "fused_recurrent") else gla_chunked

    def run(q_, k_, v_, g_, h0_, out_):
        return fn(q_, k_, v_, g_, scale, h0_, out_)

    o, ht = per_sequence(run, (q, k, v, g), h0, cu_seqlens, output_final_state)
    return o.to(v.dtype), ht


def _gla_op_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, h0: torch.Tensor | None,
            cu_seqlens: torch.Tensor | None, scale: float,
            mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton forward: (o, final state [N, H, K, V] float32, intra-chunk scores [B, T, H, 64] float32).

    The scores are an internal output kept for the backward (as fla ``chunk_gla`` saves ``A``); :func:`gla`
    drops them."""
    check_cu_seqlens_values(cu_seqlens, q.shape[1])
    from seqlab.kernels.gla import triton_chunk
    return triton_chunk.gla_fwd(q, k, v, g, h0, cu_seqlens, scale, mode)


def _n_seqs(q: torch.Tensor, cu_seqlens: torch.Tensor | None) -> int:
    return q.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1


_gla_op = custom_op("seqlab::gla", _gla_op_impl)


@_gla_op.register_fake
def _(q, k, v, g, h0, cu_seqlens, scale, mode):
    B, T, H, K = q.shape
    return (torch.empty_like(v), q.new_empty(_n_seqs(q, cu_seqlens), H, K, v.shape[3], dtype=torch.float32),
            q.new_empty(B, T, H, _CHUNK, dtype=torch.float32))


def _setup(ctx, inputs, output):
    q, k, v, g, h0, cu_seqlens, scale, mode = inputs
    ctx.save_for_backward(q, k, v, g, h0, cu_seqlens, output[2])
    ctx.scale = scale
    ctx.mark_non_differentiable(output[2])
    ctx.set_materialize_grads(False)  # no zero-filled gradients for the unused scores / final state


def _gla_bwd_op_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, h0: torch.Tensor | None,
                scores: torch.Tensor, cu_seqlens: torch.Tensor | None, scale: float, do: torch.Tensor,
                dht: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: (dq, dk, dv, dg, d h0); d h0 is an empty tensor without an initial state."""
    from seqlab.kernels.gla import triton_chunk
    dq, dk, dv, dg, dh0 = triton_chunk.gla_bwd(q, k, v, g, h0, scores, cu_seqlens, scale, do, dht)
    return dq, dk, dv, dg, (q.new_empty(0, dtype=torch.float32) if dh0 is None else dh0)


_gla_bwd_op = custom_op("seqlab::gla_bwd", _gla_bwd_op_impl)


@_gla_bwd_op.register_fake
def _(q, k, v, g, h0, scores, cu_seqlens, scale, do, dht):
    dh0 = q.new_empty(0, dtype=torch.float32) if h0 is None else torch.empty_like(h0, dtype=torch.float32)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(g), dh0


def _backward(ctx, do, dht, _d_scores):
    q, k, v, g, h0, cu_seqlens, scores = ctx.saved_tensors
    do = torch.zeros_like(v) if do is None else do.contiguous()
    dq, dk, dv, dg, dh0 = call(_gla_bwd_op, q, k, v, g, h0, scores, cu_seqlens, ctx.scale, do,
                                                   None if dht is None else dht.contiguous())
    return dq, dk, dv, dg, (dh0 if h0 is not None else None), None, None, None


_gla = EagerTwin(_gla_op, _setup, _backward)


def gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    reverse: bool = False,
    mode: str = "chunk",
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated linear attention with a vector log decay (GLA, Yang et al. 2024).

    ``S_t = diag(exp g_t) S_{t-1} + k_t v_t^T`` and ``o_t = scale * S_t^T q_t`` per head, state ``[K, V]``
    kept in float32.

    Args:
        q: queries ``[B, T, H, K]`` (float32, float16 or bfloat16).
        k: keys ``[B, T, H, K]``, dtype of ``q``.
        v: values ``[B, T, H, V]``, dtype of ``q``.
        g: log decay per key channel ``[B, T, H, K]`` (``<= 0`` for a decay; any float dtype).
        scale: query scale, default ``K ** -0.5``.
        initial_state: ``[N, H, K, V]`` float32 (N = B, or the number of sequences with ``cu_seqlens``).
        output_final_state: also return the final state ``[N, H, K, V]`` (float32).
        cu_seqlens: ``[N + 1]`` int offsets of packed sequences (FlashAttention convention, needs B = 1).
        reverse: scan right to left inside every sequence.
        mode: ``"chunk"`` (training / prefill), ``"fused_recurrent"`` (token by token) or ``"naive"``
            (the PyTorch oracle loop, autograd only).
        backend: ``"triton"`` (custom op ``seqlab::gla`` with a fake and an autograd registration, opaque to
            ``torch.compile``) or ``"torch"`` (the chunked PyTorch form, traced and differentiated by PyTorch;
            ``fused_recurrent`` maps to the step loop); default from ``seqlab.kernels.choose_backend``.

    Returns:
        ``(o, final_state)``: o ``[B, T, H, V]`` in the dtype of ``v``; final_state or None.

    Raises:
        ValueError: on mismatched shapes, dtypes, devices, non-contiguous inputs, bad ``cu_seqlens``,
            an unknown mode or backend.
    """
    dims = Dims()
    check_tensor(q, "q", "B T H K", dims)
    check_tensor(k, "k", "B T H K", dims)
    check_tensor(v, "v", "B T H V", dims)
    check_tensor(g, "g", "B T H K", dims)
    check_same_dtype({"q": q, "k": k, "v": v})
    dims.sizes["N"] = check_cu_seqlens_meta(cu_seqlens, dims)
    dims.bound_by["N"] = "cu_seqlens" if cu_seqlens is not None else "q (batch size)"
    check_tensor(initial_state, "initial_state", "N H K V", dims, dtypes=STATE_DTYPES, optional=True)
    check_choice(mode, "mode", MODES)
    scale = float(dims["K"] ** -0.5 if scale is None else scale)
    idx = reverse_index(dims["T"], cu_seqlens, q.device) if reverse else None
    q, k, v, g = (flip_time(x, idx) for x in (q, k, v, g))
    be = "torch" if mode == "naive" else choose_backend(q, k, v, g, initial_state, backend=backend)
    if be == "torch":
        o, ht = _torch_forward(q, k, v, g, initial_state, cu_seqlens, scale, mode, output_final_state)
    else:
        o, ht, _ = _gla(q, k, v, g, initial_state, cu_seqlens, scale, mode)
    return flip_time(o, idx), (ht if output_final_state else None)
