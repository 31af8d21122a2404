"""Attention as an RNN (Aaren): prefix softmax attention with one query per head, ``seqlab.kernels.prefix_attention``.

See :mod:`seqlab.kernels.prefix_attention.reference` for the math and
:mod:`seqlab.kernels.prefix_attention.triton_scan` for the GPU kernels. Public entry points:
:func:`prefix_attention` (the whole sequence, parallel) and :func:`prefix_attention_step` (streaming, O(1)).
"""
from __future__ import annotations

import torch

from seqlab.kernels._checks import (
    STATE_DTYPES,
    Dims,
    check_cu_seqlens_meta,
    check_cu_seqlens_values,
    check_tensor,
)
from seqlab.kernels._dispatch import choose_backend
from seqlab.kernels._eager import EagerTwin, call, custom_op
from seqlab.kernels._segments import flip_time, per_sequence, reverse_index
from seqlab.kernels.prefix_attention.reference import (
    State,
    prefix_attention_chunked,
    prefix_attention_naive,
)
from seqlab.kernels.prefix_attention.reference import prefix_attention_step as _step_ref

__all__ = ["prefix_attention", "prefix_attention_step", "State"]


def _n_seqs(v: torch.Tensor, cu_seqlens: torch.Tensor | None) -> int:
    return v.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1


def _pa_op_impl(s: torch.Tensor, v: torch.Tensor, m0: torch.Tensor | None, u0: torch.Tensor | None,
           w0: torch.Tensor | None, cu_seqlens: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton forward: (o, m_T, u_T, w_T, lse) with lse ``[B, T, H]`` float32 saved for the backward."""
    check_cu_seqlens_values(cu_seqlens, v.shape[1])
    from seqlab.kernels.prefix_attention import triton_scan
    return triton_scan.prefix_attention_fwd(s, v, m0, u0, w0, cu_seqlens)


_pa_op = custom_op("seqlab::prefix_attention", _pa_op_impl)


@_pa_op.register_fake
def _(s, v, m0, u0, w0, cu_seqlens):
    n, H, V = _n_seqs(v, cu_seqlens), v.shape[2], v.shape[3]
    f32 = torch.float32
    return (torch.empty_like(v), v.new_empty(n, H, dtype=f32), v.new_empty(n, H, V, dtype=f32),
            v.new_empty(n, H, dtype=f32), s.new_empty(s.shape, dtype=f32))


def _pa_bwd_op_impl(s: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor, m0: torch.Tensor | None,
               u0: torch.Tensor | None, w0: torch.Tensor | None, mT: torch.Tensor, cu_seqlens: torch.Tensor | None,
               do: torch.Tensor, duT: torch.Tensor, dwT: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: (ds, dv, du0, dw0)."""
    from seqlab.kernels.prefix_attention import triton_scan
    return triton_scan.prefix_attention_bwd(s, v, o, lse, m0, mT, cu_seqlens, do, duT, dwT, u0, w0)


_pa_bwd_op = custom_op("seqlab::prefix_attention_bwd", _pa_bwd_op_impl)


@_pa_bwd_op.register_fake
def _(s, v, o, lse, m0, u0, w0, mT, cu_seqlens, do, duT, dwT):
    n, H, V = _n_seqs(v, cu_seqlens), v.shape[2], v.shape[3]
    f32 = torch.float32
    return torch.empty_like(s), torch.empty_like(v), v.new_empty(n, H, V, dtype=f32), v.new_empty(n, H, dtype=f32)


def _setup(ctx, inputs, output):
    s, v, m0, u0, w0, cu_seqlens = inputs
    o, mT, _, _, lse = output
    ctx.save_for_backward(s, v, o, lse, m0, u0, w0, mT, cu_seqlens)
    ctx.has_h0 = u0 is not None


def _backward(ctx, do, dmT, duT, dwT, dlse):
    s, v, o, lse, m0, u0, w0, mT, cu_seqlens = ctx.saved_tensors
    if duT is None:
        duT = torch.zeros(mT.shape + (v.shape[-1],), device=v.device)
    if dwT is None:
        dwT = torch.zeros_like(mT)
    if do is None:
        do = torch.zeros_like(o)
    ds, dv, du0, dw0 = call(_pa_bwd_op, s, v, o, lse, m0, u0, w0, mT, cu_seqlens, do.contiguous(),
                                                             duT.contiguous(), dwT.contiguous())
    if not ctx.has_h0:
        du0 = dw0 = None
    return ds, dv, None, du0, dw0, None


_pa = EagerTwin(_pa_op, _setup, _backward)


def _check(s, v, initial_state, cu_seqlens, dims):
    check_tensor(v, "v", "B T H V", dims)
    check_tensor(s, "s", "B T H", dims)
    if s.dtype != v.dtype and s.dtype != torch.float32:
        raise ValueError(f"s must have the dtype of v ({v.dtype}) or float32, got {s.dtype}")
    dims.sizes["N"] = check_cu_seqlens_meta(cu_seqlens, dims)
    dims.bound_by["N"] = "cu_seqlens" if cu_seqlens is not None else "v (batch size)"
    if initial_state is not None:
        if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 3:
            raise ValueError("initial_state must be a tuple (m [N, H], u [N, H, V], w [N, H]) of float32 tensors")
        m0, u0, w0 = initial_state
        check_tensor(m0, "initial_state[0] (m)", "N H", dims, dtypes=STATE_DTYPES)
        check_tensor(u0, "initial_state[1] (u)", "N H V", dims, dtypes=STATE_DTYPES)
        check_tensor(w0, "initial_state[2] (w)", "N H", dims, dtypes=STATE_DTYPES)


def prefix_attention(
    s: torch.Tensor,
    v: torch.Tensor,
    *,
    initial_state: State | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    reverse: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, State | None]:
    """Many-to-many softmax attention with one query per head: ``o_t = sum_{i<=t} softmax(s_{1..t})_i v_i``.

    Computed as a prefix scan over (max ``m``, numerator ``u``, denominator ``w``) (Feng et al. 2024,
    "Attention as an RNN"), stable for any score range. ``m`` is a stabiliser without gradient.

    Args:
        s: scores ``[B, T, H]`` (``q . k_t`` of the head's single query), float32 or the dtype of ``v``.
        v: values ``[B, T, H, V]`` (float32, float16 or bfloat16).
        initial_state: ``(m [N, H], u [N, H, V], w [N, H])`` float32, e.g. a previous final state.
        output_final_state: also return the final ``(m, u, w)``.
        cu_seqlens: ``[N + 1]`` int offsets of packed sequences (FlashAttention convention, needs B = 1).
        reverse: scan right to left (suffix attention) inside every sequence.
        backend: ``"triton"`` (custom op ``seqlab::prefix_attention``) or ``"torch"`` (chunked PyTorch form).

    Returns:
        ``(o, final_state)``: o ``[B, T, H, V]`` in the dtype of ``v``; final state or None.

    Raises:
        ValueError: on mismatched shapes, dtypes, devices, non-contiguous inputs or bad ``cu_seqlens``.
    """
    dims = Dims()
    _check(s, v, initial_state, cu_seqlens, dims)
    idx = reverse_index(dims["T"], cu_seqlens, v.device) if reverse else None
    s, v = flip_time(s, idx), flip_time(v, idx)
    be = choose_backend(s, v, backend=backend)
    if be == "torch":
        check_cu_seqlens_values(cu_seqlens, dims["T"])
        h0 = tuple(initial_state) if initial_state is not None else None
        o, st = per_sequence(prefix_attention_chunked, (s, v), h0, cu_seqlens, output_final_state)
        o = o.to(v.dtype)
    else:
        m0, u0, w0 = initial_state if initial_state is not None else (None, None, None)
        o, mT, uT, wT, _ = _pa(s, v, m0, u0, w0, cu_seqlens)
        st = (mT, uT, wT)
    return flip_time(o, idx), (st if output_final_state else None)


def prefix_attention_step(
    s_t: torch.Tensor, v_t: torch.Tensor, state: State | None = None
) -> tuple[torch.Tensor, State]:
    """One streaming step in O(1) memory (the RNN form of Aaren).

    Args:
        s_t: scores of the new token ``[B, H]``.
        v_t: its values ``[B, H, V]``.
        state: ``(m [B, H], u [B, H, V], w [B, H])`` float32, or None for an empty prefix.

    Returns:
        ``(o_t [B, H, V] in the dtype of v_t, new state)``.

    Raises:
        ValueError: on mismatched shapes.
    """
    dims = Dims()
    check_tensor(v_t, "v_t", "B H V", dims, contiguous=False)
    check_tensor(s_t, "s_t", "B H", dims, contiguous=False)
    if state is not None:
        if not isinstance(state, (tuple, list)) or len(state) != 3:
            raise ValueError("state must be a tuple (m [B, H], u [B, H, V], w [B, H]) of float32 tensors")
        for x, n, spec in zip(state, "muw", ("B H", "B H V", "B H")):
            check_tensor(x, f"state ({n})", spec, dims, dtypes=STATE_DTYPES, contiguous=False)
    o, st = _step_ref(s_t, v_t, None if state is None else tuple(state))
    return o.to(v_t.dtype), st


def _naive(s, v, initial_state=None, output_final_state=False, cu_seqlens=None):
    """The oracle with varlen (tests)."""
    return per_sequence(prefix_attention_naive, (s, v), initial_state, cu_seqlens, output_final_state)
