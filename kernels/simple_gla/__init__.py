"""Scalar-gated linear attention (simple GLA): ``S_t = exp(g_t) S_{t-1} + k_t v_t^T``, ``o_t = scale S_t^T q_t``.

g = 0 gives causal linear attention, a constant g per head RetNet, a data-dependent g Mamba-2 / SSD.
Forms: ``"chunk"`` (training / prefill: tensor-core matmuls inside 64-step chunks, a state pass between
chunks), ``"fused_recurrent"`` (token by token, for decoding) and ``"naive"`` (the PyTorch oracle).
Peer: fla ``chunk_simple_gla`` (github.com/fla-org/flash-linear-attention, ``fla/ops/simple_gla``).
q and k may have fewer heads than v (GQA, Mamba-2 ``ngroups``): value head ``h`` uses q/k head ``h // (H // HK)``.
"""
from __future__ import annotations

import torch

from seqlab.kernels._checks import (
    STATE_DTYPES,
    Dims,
    check_choice,
    check_cu_seqlens_meta,
    check_cu_seqlens_values,
    check_tensor,
)
from seqlab.kernels._dispatch import choose_backend
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels.simple_gla.reference import simple_gla_chunked, simple_gla_naive, simple_gla_varlen

__all__ = ["simple_gla", "simple_gla_naive", "simple_gla_chunked"]
MODES = ("chunk", "fused_recurrent", "naive")


def _torch_forward(q, k, v, g, h0, cu_seqlens, scale, reverse, mode):
    form = simple_gla_chunked if mode == "chunk" else simple_gla_naive
    if cu_seqlens is None:
        return form(q, k, v, g, scale, h0, reverse)
    return simple_gla_varlen(form, q, k, v, g, scale, h0, cu_seqlens.tolist(), reverse)


def _empty_state(v: torch.Tensor) -> torch.Tensor:
    return v.new_empty(0, dtype=torch.float32)


def _fwd_op_impl(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, h0: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, scale: float, reverse: bool, output_final_state: bool, mode: str, backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_cu_seqlens_values(cu_seqlens, q.shape[1])
    if backend == "triton" and mode != "naive":
        offsets = None if cu_seqlens is None else cu_seqlens.tolist()
        if mode == "chunk":
            from seqlab.kernels.simple_gla.triton_chunk import chunk_simple_gla_fwd

            o, ht = chunk_simple_gla_fwd(q, k, v, g, scale, h0, cu_seqlens, offsets, reverse, output_final_state)
        else:
            from seqlab.kernels.simple_gla.triton_chunk import fused_recurrent_simple_gla_fwd

            o, ht = fused_recurrent_simple_gla_fwd(q, k, v, g, scale, h0, cu_seqlens, reverse, output_final_state)
    else:
        with torch.no_grad():
            o, ht = _torch_forward(q, k, v, g, h0, cu_seqlens, scale, reverse, mode)
        ht = ht.float() if output_final_state else None
    # outputs must have the fake implementation's (contiguous) layout
    return o.contiguous(), (ht.contiguous() if ht is not None else _empty_state(v))


_fwd_op = custom_op("seqlab::simple_gla_fwd", _fwd_op_impl)


@_fwd_op.register_fake
def _(q, k, v, g, h0, cu_seqlens, scale, reverse, output_final_state, mode, backend):
    n = q.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1
    shape = (n, v.shape[2], q.shape[3], v.shape[3])  # value heads H (q/k may have HK < H)
    return torch.empty_like(v), (v.new_empty(shape, dtype=torch.float32) if output_final_state else _empty_state(v))


def _bwd_op_impl(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, h0: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None, do: torch.Tensor, dht: torch.Tensor | None,
    scale: float, reverse: bool, mode: str, backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if backend == "triton" and mode != "naive":
        from seqlab.kernels.simple_gla.triton_chunk import chunk_simple_gla_bwd

        offsets = None if cu_seqlens is None else cu_seqlens.tolist()
        dq, dk, dv, dg, dh0 = chunk_simple_gla_bwd(q, k, v, g, scale, h0, cu_seqlens, offsets, reverse,
                                                   do.contiguous(), dht)
    else:
        # autograd is off below a custom op; functorch's vjp still differentiates the PyTorch form
        def f(q_, k_, v_, g_, *h0_):
            o, s = _torch_forward(q_, k_, v_, g_, h0_[0] if h0_ else None, cu_seqlens, scale, reverse, mode)
            return o, s.float()

        (o, s), vjp = torch.func.vjp(f, q, k, v, g, *([h0] if h0 is not None else []))
        dq, dk, dv, dg, *rest = vjp((do.to(o.dtype), torch.zeros_like(s) if dht is None else dht))
        dh0 = rest[0] if rest else None
    dh0 = dh0.contiguous() if dh0 is not None else _empty_state(v)
    return dq.contiguous(), dk.contiguous(), dv.contiguous(), dg.contiguous(), dh0


_bwd_op = custom_op("seqlab::simple_gla_bwd", _bwd_op_impl)


@_bwd_op.register_fake
def _(q, k, v, g, h0, cu_seqlens, do, dht, scale, reverse, mode, backend):
    dh0 = torch.empty_like(h0) if h0 is not None else _empty_state(v)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(g), dh0


def _setup_context(ctx, inputs, output):
    q, k, v, g, h0, cu_seqlens, scale, reverse, output_final_state, mode, backend = inputs
    ctx.save_for_backward(q, k, v, g, h0, cu_seqlens)
    ctx.flags = (scale, reverse, output_final_state, mode, backend)


def _backward(ctx, do, dht):
    q, k, v, g, h0, cu_seqlens = ctx.saved_tensors
    scale, reverse, output_final_state, mode, backend = ctx.flags
    dht = dht.contiguous() if (output_final_state and dht is not None) else None
    if do is None:
        do = torch.zeros_like(v)
    dq, dk, dv, dg, dh0 = call(_bwd_op, q, k, v, g, h0, cu_seqlens, do, dht, scale, reverse, mode, backend)
    return dq, dk, dv, dg, (dh0 if h0 is not None else None), None, None, None, None, None, None


_fwd = EagerTwin(_fwd_op, _setup_context, _backward)


def simple_gla(
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
    """Linear attention with a scalar log-decay per head and step.

    Args:
        q: queries ``[B, T, HK, K]``; ``HK`` (q/k heads) must divide ``H`` (value heads): grouped heads (GQA,
            Mamba-2 ``ngroups``), value head ``h`` uses q/k head ``h // (H // HK)``. ``HK == H`` is plain.
        k: keys ``[B, T, HK, K]``; gradients of q and k come back in their own shape.
        v: values ``[B, T, H, V]``; ``o`` comes back in this dtype.
        g: log-decay ``[B, T, H]`` (``<= 0`` for a decay; float32 recommended).
        scale: multiplier of ``q``; default ``K ** -0.5``.
        initial_state: ``[N, H, K, V]`` float32 (``N = B``, or the number of sequences with varlen).
        output_final_state: also return the last state ``[N, H, K, V]`` float32.
        cu_seqlens: FlashAttention-style offsets ``[N + 1]`` of sequences packed along T; needs ``B == 1``.
        reverse: right to left, ``S_t = exp(g_t) S_{t+1} + k_t v_t^T``.
        mode: ``"chunk"``, ``"fused_recurrent"`` or ``"naive"`` (the oracle loop, always PyTorch).
        backend: ``"triton"`` or ``"torch"``; default from ``SEQLAB_KERNEL_BACKEND``, else Triton on CUDA.

    Returns:
        ``(o, final_state)``: ``o`` ``[B, T, H, V]`` and the final state or None.

    Raises:
        ValueError: on shape / dtype / device / layout mismatch, q/k heads not dividing the value heads, bad
            ``cu_seqlens`` or an unknown mode.
    """
    check_choice(mode, "mode", MODES)
    dims = Dims()
    check_tensor(q, "q", "B T HK K", dims)
    check_tensor(k, "k", "B T HK K", dims)
    check_tensor(v, "v", "B T H V", dims)
    check_tensor(g, "g", "B T H", dims)
    HK, H = dims["HK"], dims["H"]
    if not (H % HK == 0 if HK else H == 0):
        raise ValueError(f"q/k heads HK must divide the value heads H: q, k [B, T, HK, K], v [B, T, H, V], "
                         f"g [B, T, H], got HK = {HK} (q, k), H = {H} (v)")
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    n = check_cu_seqlens_meta(cu_seqlens, dims)
    dims.sizes["N"], dims.bound_by["N"] = n, "cu_seqlens" if cu_seqlens is not None else "q"
    check_tensor(initial_state, "initial_state", "N H K V", dims, dtypes=STATE_DTYPES, optional=True)
    if dims["K"] > 256 or dims["V"] > 256:
        raise ValueError(f"head dims K and V must be <= 256, got K = {dims['K']}, V = {dims['V']}")
    scale = float(dims["K"] ** -0.5) if scale is None else float(scale)
    which = choose_backend(q, k, v, g, backend=backend)
    o, ht = _fwd(q, k, v, g, initial_state, cu_seqlens, scale, reverse, output_final_state, mode, which)
    return o, (ht if output_final_state else None)
