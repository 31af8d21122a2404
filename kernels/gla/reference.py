"""Gated linear attention with a vector decay, in pure PyTorch: the naive recurrent oracle and the chunked form.

Recurrence (Yang et al. 2024, "Gated Linear Attention Transformers with Hardware-Efficient Training", eq. 3;
fla ``ops/gla/naive.py``), per head, state ``S`` of shape ``[K, V]``::

    S_t = diag(exp g_t) S_{t-1} + k_t v_t^T,      o_t = scale * S_t^T q_t

Chunked form (paper section 4.2, "secondary-level chunking"; fla ``ops/gla/chunk.py``): chunks of ``C``
steps, ``gc`` the in-chunk cumulative log decay. Inter-chunk: ``o += (q * exp(gc)) @ S_chunk_start``,
``S_next = exp(gc_C) * S + (k * exp(gc_C - gc))^T v``. Intra-chunk scores
``A_ij = sum_d q_id k_jd exp(gc_id - gc_jd)`` (j <= i) are formed in sub-chunks of 16: off-diagonal
sub-blocks as a matmul with the decay split at the first step of the query sub-chunk (both factors <= 1),
diagonal sub-blocks elementwise in log space. No factor above 1 is ever formed, so any decay is safe.

Both functions work on dense ``[B, T, H, *]`` batches and compute in float32 (float64 stays float64);
varlen and reverse are handled by the caller (``seqlab.kernels.gla``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def gla_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token recurrence (the oracle). Shapes: q/k/g ``[B, T, H, K]``, v ``[B, T, H, V]``."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = _acc_dtype(q)
    q, k, v, g = (x.to(acc) for x in (q, k, v, g))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None] + k[:, t, :, :, None] * v[:, t, :, None, :]  # [B, H, K, V]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, 1) if T else v.new_zeros(B, 0, H, V)
    return o, (S if output_final_state else None)


def gla_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
    sub_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked parallel form (the CPU path); same contract as :func:`gla_naive`."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = _acc_dtype(q)
    C, Cs = chunk_size, sub_size
    pad = (-T) % C
    N = (T + pad) // C

    def prep(x: torch.Tensor) -> torch.Tensor:  # [B, T, H, D] -> [B, H, N, C, D]
        x = F.pad(x.to(acc), (0, 0, 0, 0, 0, pad))
        return x.view(B, N, C, H, -1).permute(0, 3, 1, 2, 4)

    q, k, v, g = prep(q) * scale, prep(k), prep(v), prep(g)
    gc = g.cumsum(-2)  # [B, H, N, C, K]
    A = intra_chunk_scores(q, k, gc, Cs)
    o = A @ v  # intra-chunk, [B, H, N, C, V]
    # inter-chunk: sequential over chunks on [K, V] states
    glast = gc[..., -1:, :]  # [B, H, N, 1, K]
    kdec = k * (glast - gc).exp()
    kv = kdec.transpose(-1, -2) @ v  # [B, H, N, K, V]
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    qdec = q * gc.exp()
    inter = []
    for n in range(N):
        inter.append(qdec[:, :, n] @ S)
        S = glast[:, :, n, 0, :, None].exp() * S + kv[:, :, n]
    o = o + torch.stack(inter, 2)
    o = o.permute(0, 2, 3, 1, 4).reshape(B, N * C, H, V)[:, :T]
    return o, (S if output_final_state else None)


def intra_chunk_scores(q: torch.Tensor, k: torch.Tensor, gc: torch.Tensor, sub_size: int = 16) -> torch.Tensor:
    """Causal intra-chunk scores ``A_ij = sum_d q_id k_jd exp(gc_id - gc_jd)`` (j <= i), stable for any decay.

    Off-diagonal sub-blocks of ``sub_size`` are a matmul with the decay split at the first step of the query
    sub-chunk (both factors <= 1); diagonal sub-blocks are formed elementwise in log space.

    Args:
        q: ``[..., C, K]`` (scale already applied).
        k: ``[..., C, K]``.
        gc: in-chunk cumulative log decay ``[..., C, K]``.
        sub_size: sub-chunk length (divides C).

    Returns:
        ``[..., C, C]`` lower-triangular scores.
    """
    *lead, C, K = q.shape
    Cs = sub_size
    S_ = C // Cs
    ref = gc.reshape(*lead, S_, Cs, K)[..., 0, :]  # [..., S, K]
    qq = (q * (gc - ref.repeat_interleave(Cs, -2)).exp()).reshape(*lead, S_, Cs, K)
    kk = k[..., None, :, :] * (ref[..., :, None, :] - gc[..., None, :, :]).clamp(max=0).exp()  # [..., S, C, K]
    A = (qq @ kk.transpose(-1, -2)).reshape(*lead, C, C)
    sub_of = torch.arange(C, device=q.device) // Cs
    A = A * (sub_of[:, None] > sub_of[None, :])
    gs = gc.reshape(*lead, S_, Cs, K)
    diff = (gs[..., :, None, :] - gs[..., None, :, :]).clamp(max=0)  # [..., S, Cs, Cs, K]
    Ad = (q.reshape(*lead, S_, Cs, 1, K) * k.reshape(*lead, S_, 1, Cs, K) * diff.exp()).sum(-1)
    Ad = Ad * torch.ones(Cs, Cs, dtype=torch.bool, device=q.device).tril()  # [..., S, Cs, Cs]
    eye = torch.eye(S_, dtype=A.dtype, device=q.device)
    return A + torch.einsum("...sij,st->...sitj", Ad, eye).reshape(*lead, C, C)
