"""The (gated) delta rule in pure PyTorch: the naive recurrent oracle and the chunked WY form.

Recurrence per head, state ``S`` of shape ``[K, V]`` (Schlag et al. 2021; Yang et al. 2024, "Parallelizing
Linear Transformers with the Delta Rule over Sequence Length", eq. 1; gated variant Yang et al. 2025,
"Gated Delta Networks"; fla ``ops/delta_rule/naive.py``, ``ops/gated_delta_rule/naive.py``)::

    S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,      o_t = scale * S_t^T q_t

Chunked form (DeltaNet paper section 3.2-3.3, the WY representation with the UT transform; fla
``ops/delta_rule/wy_fast.py`` and ``ops/common/chunk_delta_h.py``), per chunk of ``C`` steps with in-chunk
cumulative gate ``gc`` and ``Gamma_ij = exp(gc_i - gc_j)``::

    A = strict_tril(beta_i (k_i . k_j) Gamma_ij),   T = (I + A)^{-1}             (UT transform)
    u = T (beta v),   w = T (beta exp(gc) k)                                      (WY factors)
    v' = u - w S,   o = scale * ((q exp(gc)) S + tril(q k^T * Gamma) v')
    S_next = exp(gc_C) S + (k exp(gc_C - gc))^T v'

Inputs are taken as given (q/k normalisation and the beta scaling for negative eigenvalues are applied by the
public op). Both functions work on dense ``[B, T, H, *]`` batches in float32 (float64 stays float64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def delta_rule_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    g: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token recurrence (the oracle). q/k ``[B, T, H, K]``, v ``[B, T, H, V]``, beta/g ``[B, T, H]``."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = _acc_dtype(q)
    q, k, v, beta = (x.to(acc) for x in (q, k, v, beta))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for t in range(T):
        if g is not None:
            S = S * g[:, t].to(acc).exp()[..., None, None]
        kt = k[:, t]
        vnew = (v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S)) * beta[:, t, :, None]
        S = S + kt[..., None] * vnew[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, 1) if T else v.new_zeros(B, 0, H, V)
    return o, (S if output_final_state else None)


def delta_rule_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    g: torch.Tensor | None,
    scale: float,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked WY / UT-transform form (the CPU path); same contract as :func:`delta_rule_naive`."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    acc = _acc_dtype(q)
    C = chunk_size
    pad = (-T) % C
    N = (T + pad) // C

    def prep(x: torch.Tensor) -> torch.Tensor:  # [B, T, H, D] -> [B, H, N, C, D]; padded steps are identity
        x = F.pad(x.to(acc), (0, 0, 0, 0, 0, pad))
        return x.view(B, N, C, H, -1).permute(0, 3, 1, 2, 4)

    q, k, v = prep(q) * scale, prep(k), prep(v)
    b = prep(beta[..., None])  # [B, H, N, C, 1]
    gc = prep(g[..., None]).cumsum(-2) if g is not None else torch.zeros_like(b)  # [B, H, N, C, 1]
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    gam = (gc - gc.transpose(-1, -2)).masked_fill(~causal, float("-inf")).exp()  # [B, H, N, C, C]
    A = (b * (k @ k.transpose(-1, -2)) * gam).tril(-1)
    eye = torch.eye(C, dtype=acc, device=q.device)
    Tm = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False, unitriangular=True)
    u = Tm @ (b * v)
    w = Tm @ (b * gc.exp() * k)
    Aqk = (q @ k.transpose(-1, -2)) * gam  # causal incl. diagonal (gam is 0 above)
    qdec = q * gc.exp()
    kdec = k * (gc[..., -1:, :] - gc).exp()
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(acc)
    outs = []
    for n in range(N):
        vn = u[:, :, n] - w[:, :, n] @ S
        outs.append(qdec[:, :, n] @ S + Aqk[:, :, n] @ vn)
        S = gc[:, :, n, -1:, :].exp() * S + kdec[:, :, n].transpose(-1, -2) @ vn
    o = torch.stack(outs, 2).permute(0, 2, 3, 1, 4).reshape(B, N * C, H, V)[:, :T]
    return o, (S if output_final_state else None)


L2NORM_EPS = 1e-6


def l2norm_reference(x: torch.Tensor, eps: float = L2NORM_EPS) -> torch.Tensor:
    """``x / sqrt(sum(x^2, -1) + eps)`` in float32 (float64 stays float64), returned in ``x.dtype``: the q / k
    normalisation of ``qk_l2norm=True`` (the Triton path runs the same as one kernel, ``triton_l2norm.py``)."""
    xf = x.double() if x.dtype == torch.float64 else x.float()
    return (xf * torch.rsqrt(xf.square().sum(-1, keepdim=True) + eps)).to(x.dtype)
