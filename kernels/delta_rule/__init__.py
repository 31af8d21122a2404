"""The delta rule and gated delta rule, with optional negative eigenvalues: ``seqlab.kernels.delta_rule``.

See :mod:`seqlab.kernels.delta_rule.reference` for the math and
:mod:`seqlab.kernels.delta_rule.triton_chunk` for the GPU kernels. Public entry point: :func:`delta_rule`.
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
from seqlab.kernels._segments import flip_time, per_sequence, reverse_index
from seqlab.kernels.delta_rule.reference import delta_rule_chunked, delta_rule_naive, l2norm_reference

MODES = ("chunk", "fused_recurrent", "naive")
# The Triton state passes keep a [K, BV] block of the state in registers and load [64, K] tiles per chunk; above
# K = 256 their shared memory no longer fits on sm_90 (compiled offline: 211 KB at K = 256), so larger keys take the
# PyTorch chunked form even when the Triton backend is chosen.
MAX_TRITON_K = 256

__all__ = ["MODES", "delta_rule"]


def _torch_forward(q, k, v, beta, g, h0, cu_seqlens, scale, mode, output_final_state):
    check_cu_seqlens_values(cu_seqlens, q.shape[1])
    fn = delta_rule_naive if mode in ("naive", "fused_recurrent") else delta_rule_chunked

    def run(q_, k_, v_, b_, g_, h0_, out_):
        return fn(q_, k_, v_, b_, g_, scale, h0_, out_)

    o, ht = per_sequence(run, (q, k, v, beta, g), h0, cu_seqlens, output_final_state)
    return o.to(v.dtype), ht


def _n_seqs(q: torch.Tensor, cu_seqlens: torch.Tensor | None) -> int:
    return q.shape[0] if cu_seqlens is None else cu_seqlens.shape[0] - 1


def _delta_op_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g: torch.Tensor | None,
              h0: torch.Tensor | None, cu_seqlens: torch.Tensor | None, scale: float, mode: str
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton forward: (o, final state [N, H, K, V] float32, then Ai, w, h, v' per chunk, kept for the backward)."""
    check_cu_seqlens_values(cu_seqlens, q.shape[1])
    from seqlab.kernels.delta_rule import triton_chunk
    return triton_chunk.delta_rule_fwd(q, k, v, beta, g, h0, cu_seqlens, scale)


_delta_op = custom_op("seqlab::delta_rule", _delta_op_impl)


@_delta_op.register_fake
def _(q, k, v, beta, g, h0, cu_seqlens, scale, mode):
    from seqlab.kernels.delta_rule.triton_chunk import CHUNK, n_chunks_alloc
    B, T, H, K = q.shape
    V = v.shape[3]
    nta = n_chunks_alloc(B, T, cu_seqlens)
    return (torch.empty_like(v), q.new_empty(_n_seqs(q, cu_seqlens), H, K, V, dtype=torch.float32),
            q.new_empty(nta, CHUNK, H, CHUNK), q.new_empty(nta, CHUNK, H, K), q.new_empty(nta, H, K, V),
            q.new_empty(nta, CHUNK, H, V))


def _delta_bwd_op_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g: torch.Tensor | None,
                  h0: torch.Tensor | None, cu_seqlens: torch.Tensor | None, ai: torch.Tensor, w: torch.Tensor,
                  hs: torch.Tensor, vn: torch.Tensor, do: torch.Tensor, dht: torch.Tensor, scale: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: (dq, dk, dv, dbeta, dg or an empty tensor, d h0 [N, H, K, V] float32)."""
    from seqlab.kernels.delta_rule import triton_chunk
    dq, dk, dv, db, dg, dh0 = triton_chunk.delta_rule_bwd(q, k, v, beta, g, h0, cu_seqlens, scale, ai, w, hs, vn,
                                                          do.contiguous(), dht.contiguous())
    return dq, dk, dv, db, (dg if dg is not None else q.new_empty(0)), dh0


_delta_bwd_op = custom_op("seqlab::delta_rule_bwd", _delta_bwd_op_impl)


@_delta_bwd_op.register_fake
def _(q, k, v, beta, g, h0, cu_seqlens, ai, w, hs, vn, do, dht, scale):
    return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(beta),
            torch.empty_like(g) if g is not None else q.new_empty(0), torch.empty_like(dht))


def _setup(ctx, inputs, output):
    q, k, v, beta, g, h0, cu_seqlens, scale, _ = inputs
    ai, w, hs, vn = output[2:]
    ctx.mark_non_differentiable(ai, w, hs, vn)
    ctx.save_for_backward(q, k, v, beta, g, h0, cu_seqlens, ai, w, hs, vn)
    ctx.scale = scale


def _backward(ctx, do, dht, *_aux):
    q, k, v, beta, g, h0, cu_seqlens, ai, w, hs, vn = ctx.saved_tensors
    if do is None:
        do = torch.zeros_like(v)
    if dht is None:
        dht = q.new_zeros(_n_seqs(q, cu_seqlens), q.shape[2], q.shape[3], v.shape[3], dtype=torch.float32)
    dq, dk, dv, db, dg, dh0 = call(_delta_bwd_op, q, k, v, beta, g, h0, cu_seqlens, ai, w, hs, vn, do, dht,
                                   ctx.scale)
    return (dq, dk, dv, db, (dg if g is not None else None), (dh0 if h0 is not None else None),
            None, None, None)


_delta = EagerTwin(_delta_op, _setup, _backward)


def delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    g: torch.Tensor | None = None,
    scale: float | None = None,
    *,
    qk_l2norm: bool = False,
    allow_neg_eigval: bool = False,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    cu_seqlens: torch.Tensor | None = None,
    reverse: bool = False,
    mode: str = "chunk",
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeltaNet / Gated DeltaNet: ``S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T``.

    Output ``o_t = scale * S_t^T q_t``; state ``[K, V]`` per head kept in float32. With
    ``allow_neg_eigval=True`` beta is doubled (range [0, 2]) so the transition ``I - beta k k^T`` of a unit
    key has an eigenvalue in [-1, 1] (Grazzi et al. 2024), which lets one layer track parity.

    Args:
        q: queries ``[B, T, H, K]`` (float32, float16 or bfloat16).
        k: keys ``[B, T, H, K]``, dtype of ``q``; should have unit norm unless ``qk_l2norm``.
        v: values ``[B, T, H, V]``, dtype of ``q``.
        beta: writing strengths ``[B, T, H]`` in [0, 1] (any float dtype).
        g: optional log gate ``[B, T, H]`` (``<= 0``), giving the gated delta rule.
        scale: query scale, default ``K ** -0.5``.
        qk_l2norm: L2-normalise q and k over K inside the op (as fla's ``use_qk_l2norm_in_kernel``).
        allow_neg_eigval: use ``2 * beta``.
        initial_state: ``[N, H, K, V]`` float32 (N = B, or the number of sequences with ``cu_seqlens``).
        output_final_state: also return the final state ``[N, H, K, V]`` (float32).
        cu_seqlens: ``[N + 1]`` int offsets of packed sequences (FlashAttention convention, needs B = 1).
        reverse: scan right to left inside every sequence.
        mode: ``"chunk"``, ``"fused_recurrent"`` or ``"naive"`` (the PyTorch oracle loop).
        backend: ``"triton"`` (custom op ``seqlab::delta_rule``) or ``"torch"`` (chunked PyTorch form);
            default from ``seqlab.kernels.choose_backend``. Keys wider than ``MAX_TRITON_K`` (256) always use
            the PyTorch form (explicit fallback: the Triton state kernels hold the whole key dim on chip).

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
    check_tensor(beta, "beta", "B T H", dims)
    check_tensor(g, "g", "B T H", dims, optional=True)
    check_same_dtype({"q": q, "k": k, "v": v})
    dims.sizes["N"] = check_cu_seqlens_meta(cu_seqlens, dims)
    dims.bound_by["N"] = "cu_seqlens" if cu_seqlens is not None else "q (batch size)"
    check_tensor(initial_state, "initial_state", "N H K V", dims, dtypes=STATE_DTYPES, optional=True)
    check_choice(mode, "mode", MODES)
    scale = float(dims["K"] ** -0.5 if scale is None else scale)
    be = "torch" if mode == "naive" else choose_backend(q, k, v, beta, initial_state, backend=backend)
    if be == "triton" and dims["K"] > MAX_TRITON_K:
        be = "torch"
    if qk_l2norm:  # one fused Triton kernel each way on the Triton path (triton_l2norm.py), PyTorch ops otherwise
        if be == "triton":
            from seqlab.kernels.delta_rule.triton_l2norm import l2norm_triton as norm
        else:
            norm = l2norm_reference
        q, k = norm(q), norm(k)
    if allow_neg_eigval:
        beta = beta * 2
    idx = reverse_index(dims["T"], cu_seqlens, q.device) if reverse else None
    q, k, v, beta, g = (flip_time(x, idx) for x in (q, k, v, beta, g))
    if be == "torch":
        o, ht = _torch_forward(q, k, v, beta, g, initial_state, cu_seqlens, scale, mode, output_final_state)
    else:
        o, ht = _delta(q, k, v, beta, g, initial_state, cu_seqlens, scale, mode)[:2]
    return flip_time(o, idx), (ht if output_final_state else None)
