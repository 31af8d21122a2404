"""Attention as an RNN (Feng et al. 2024, "Attention as an RNN", the Aaren module) in pure PyTorch.

One query per head gives scores ``s_t`` (``[B, T, H]``); the many-to-many output is
``o_t = sum_{i<=t} softmax(s_1..s_t)_i v_i``. It is a prefix scan over the triple (running max ``m``,
numerator ``u = sum exp(s_i - m) v_i``, denominator ``w = sum exp(s_i - m)``) with the associative combine
of paper section 3.2::

    m = max(m_a, m_b),  u = u_a exp(m_a - m) + u_b exp(m_b - m),  w = w_a exp(m_a - m) + w_b exp(m_b - m)

and ``o_t = u_t / w_t``. No exponential of a positive number is ever formed, so any score range is safe.
The running max ``m`` is a stabiliser only: it is computed from detached scores and carries no gradient;
gradients flow through ``u`` and ``w`` (exact for ``o`` and for any consumer that continues the scan).

Both functions work on dense ``[B, T, H, *]`` batches in float32 (float64 stays float64); varlen and
reverse are handled by the caller.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def empty_state(B: int, H: int, V: int, device: torch.device, dtype: torch.dtype = torch.float32) -> State:
    """The state of an empty prefix: ``m = -inf``, ``u = 0``, ``w = 0``."""
    return (torch.full((B, H), float("-inf"), device=device, dtype=dtype),
            torch.zeros(B, H, V, device=device, dtype=dtype), torch.zeros(B, H, device=device, dtype=dtype))


def prefix_attention_naive(
    s: torch.Tensor,
    v: torch.Tensor,
    initial_state: State | None = None,
    output_final_state: bool = False,
) -> tuple[torch.Tensor, State | None]:
    """Step-by-step recurrence (the oracle). s ``[B, T, H]``, v ``[B, T, H, V]``."""
    B, T, H, V = v.shape
    acc = _acc_dtype(v)
    s, v = s.to(acc), v.to(acc)
    m, u, w = empty_state(B, H, V, v.device, acc) if initial_state is None else (x.to(acc) for x in initial_state)
    m = m.detach()
    outs = []
    for t in range(T):
        m_new = torch.maximum(m, s[:, t].detach())
        a, b = (m - m_new).exp(), (s[:, t] - m_new).exp()
        u = u * a[..., None] + b[..., None] * v[:, t]
        w = w * a + b
        m = m_new
        outs.append(u / w[..., None])
    o = torch.stack(outs, 1) if T else v.new_zeros(B, 0, H, V)
    return o, ((m, u, w) if output_final_state else None)


def prefix_attention_chunked(
    s: torch.Tensor,
    v: torch.Tensor,
    initial_state: State | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, State | None]:
    """Chunked parallel form (the CPU path): running max by ``cummax``, in-chunk sums as a masked matmul
    of weights ``exp(s_i - m_t) <= 1``, chunk carries rescaled sequentially. Same contract as the oracle."""
    B, T, H, V = v.shape
    acc = _acc_dtype(v)
    C = chunk_size
    pad = (-T) % C
    N = (T + pad) // C
    m0, u0, w0 = empty_state(B, H, V, v.device, acc) if initial_state is None else (x.to(acc) for x in initial_state)
    m0 = m0.detach()
    sp = F.pad(s.to(acc), (0, 0, 0, pad), value=float("-inf")).view(B, N, C, H).permute(0, 3, 1, 2)  # [B,H,N,C]
    vp = F.pad(v.to(acc), (0, 0, 0, 0, 0, pad)).view(B, N, C, H, V).permute(0, 3, 1, 2, 4)  # [B,H,N,C,V]
    m = torch.maximum(sp.detach().reshape(B, H, N * C).cummax(-1).values, m0[..., None]).view(B, H, N, C)
    causal = torch.ones(C, C, dtype=torch.bool, device=v.device).tril()
    P = (sp[..., None, :] - m[..., :, None]).masked_fill(~causal, float("-inf")).exp()  # [B,H,N,C(t),C(i)]
    P = P.nan_to_num(0.0)  # padded rows: -inf - -inf
    u_in, w_in = P @ vp, P.sum(-1)
    us, ws = [], []
    mc, uc, wc = m0, u0, w0
    for n in range(N):
        r = (mc[..., None] - m[:, :, n]).exp().nan_to_num(0.0)  # [B, H, C]
        un = uc[..., None, :] * r[..., None] + u_in[:, :, n]
        wn = wc[..., None] * r + w_in[:, :, n]
        us.append(un)
        ws.append(wn)
        mc, uc, wc = m[:, :, n, -1], un[..., -1, :], wn[..., -1]
    u, w = torch.stack(us, 2), torch.stack(ws, 2)
    o = (u / w[..., None]).permute(0, 2, 3, 1, 4).reshape(B, N * C, H, V)[:, :T]
    if not output_final_state:
        return o, None
    last = T - 1 - (N - 1) * C if T else 0
    if T == 0:
        return o, (m0, u0, w0)
    return o, (m[:, :, -1, last].contiguous(), u[:, :, -1, last].contiguous(), w[:, :, -1, last].contiguous())


def prefix_attention_step(s_t: torch.Tensor, v_t: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
    """One streaming step in O(1) memory: s_t ``[B, H]``, v_t ``[B, H, V]``, state ``(m, u, w)``."""
    B, H, V = v_t.shape
    acc = _acc_dtype(v_t)
    m, u, w = empty_state(B, H, V, v_t.device, acc) if state is None else state
    s_t, v_t = s_t.to(acc), v_t.to(acc)
    m_new = torch.maximum(m.detach(), s_t.detach())
    a, b = (m - m_new).exp(), (s_t - m_new).exp()
    u = u * a[..., None] + b[..., None] * v_t
    w = w * a + b
    return u / w[..., None], (m_new, u, w)
