"""PyTorch forms of the depthwise causal convolution on channels-last ``[B, T, C]`` inputs.

With ``xp = concat(cache, x)`` along time (``cache`` ``[B, W - 1, C]``: the ``W - 1`` inputs before ``x``,
zeros when absent)::

    y[b, t, c] = act(bias[c] + sum_{j=0}^{W-1} weight[c, j] * xp[b, t + j, c])
    new_cache  = xp[:, T:]                 (the last W - 1 rows of xp, old cache rows included when T < W - 1)

* :func:`causal_conv1d_ref` is the oracle: ``F.conv1d`` on ``[B, C, T]`` with ``groups=C`` and
  ``weight[:, None, :]`` (Mamba's / fla's ``ShortConvolution``); differentiable through autograd.
* :func:`causal_conv1d_shifted` is the same sum written as ``W`` shifted multiply-adds on the channels-last
  layout (what the Triton kernels do per tile).
* :func:`causal_conv1d_torch_fwd` / :func:`causal_conv1d_torch_bwd` are the CPU path of the op: the forward
  through ``F.conv1d`` and an analytic backward (the pre-activation is recomputed, as in the Triton backward).
* :func:`causal_conv1d_varlen_torch_fwd` / :func:`causal_conv1d_varlen_torch_bwd`: packed sequences
  (``x`` ``[1, T, C]``, ``cu_seqlens`` ``[N + 1]``, ``cache`` ``[N, W - 1, C]``) as a loop of dense calls, one per
  sequence (``B = 1``), outputs concatenated along time and caches stacked.

Arithmetic is float32 (float64 stays float64); outputs come back in the dtypes of the inputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = (None, "silu")


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _padded(x: torch.Tensor, cache: torch.Tensor | None, W: int, acc: torch.dtype) -> torch.Tensor:
    """``xp = concat(cache, x)`` ``[B, T + W - 1, C]`` in ``acc`` (zeros for a missing cache)."""
    B, _, C = x.shape
    if cache is None:
        cache = x.new_zeros(B, W - 1, C)
    return torch.cat([cache.to(acc), x.to(acc)], 1)


def _act(pre: torch.Tensor, activation: str | None) -> torch.Tensor:
    return F.silu(pre) if activation == "silu" else pre


def causal_conv1d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    cache: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Oracle: ``F.conv1d`` on the transposed input with left padding by the cache (autograd-differentiable).

    Args:
        x: ``[B, T, C]``.
        weight: depthwise taps ``[C, W]``.
        bias: ``[C]`` or None.
        activation: None or ``"silu"``.
        cache: ``[B, W - 1, C]`` or None (zeros).

    Returns:
        ``(y, new_cache)``: ``y`` ``[B, T, C]`` in ``x.dtype``, ``new_cache`` ``[B, W - 1, C]`` in ``x.dtype``.
    """
    W = weight.shape[1]
    acc = _acc_dtype(x)
    xp = _padded(x, cache, W, acc)
    if x.shape[1] == 0:  # F.conv1d refuses inputs shorter than the kernel
        return x.clone(), xp.to(x.dtype)
    pre = F.conv1d(xp.transpose(1, 2), weight.to(acc)[:, None, :], None if bias is None else bias.to(acc),
                   groups=weight.shape[0])
    y = _act(pre, activation).transpose(1, 2)
    return y.to(x.dtype), xp[:, xp.shape[1] - (W - 1):].to(x.dtype)


def causal_conv1d_shifted(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    cache: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted-sum form on the channels-last layout (same contract as :func:`causal_conv1d_ref`)."""
    B, T, C = x.shape
    W = weight.shape[1]
    acc = _acc_dtype(x)
    xp = _padded(x, cache, W, acc)
    w = weight.to(acc)
    pre = torch.zeros(B, T, C, dtype=acc, device=x.device) if bias is None else bias.to(acc).expand(B, T, C)
    for j in range(W):
        pre = pre + w[:, j] * xp[:, j:j + T]
    return _act(pre, activation).to(x.dtype), xp[:, T:].to(x.dtype)


def _fresh(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A contiguous copy in ``dtype`` sharing no storage with anything (custom-op outputs must not alias)."""
    return t.to(dtype).clone(memory_format=torch.contiguous_format)


def causal_conv1d_torch_fwd(x, weight, bias, activation, cache):
    """CPU path forward: :func:`causal_conv1d_ref` without autograd, outputs contiguous and not aliasing inputs."""
    with torch.no_grad():
        y, new_cache = causal_conv1d_ref(x, weight, bias, activation, cache)
    return _fresh(y, x.dtype), _fresh(new_cache, x.dtype)


def causal_conv1d_torch_bwd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    cache: torch.Tensor | None,
    dy: torch.Tensor,
    dnew_cache: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Analytic backward of the op (CPU path).

    With ``g = dy * act'(pre)`` (``pre`` recomputed from ``x``, ``cache``, ``weight``, ``bias``)::

        d xp[s] = sum_j weight[c, j] g[s - j]   (+ d new_cache[s - T] for s >= T)
        d x = d xp[W - 1:],  d cache = d xp[:W - 1]
        d weight[c, j] = sum_{b, t} g[b, t, c] xp[b, t + j, c],   d bias = sum_{b, t} g

    ``d xp`` is a depthwise convolution of ``g`` zero-padded by ``W - 1`` on both sides with the flipped taps.

    Returns:
        ``(dx, dweight, dbias or None, dcache or None)`` in the dtypes of the inputs.
    """
    B, T, C = x.shape
    W = weight.shape[1]
    acc = _acc_dtype(x)
    with torch.no_grad():
        xp = _padded(x, cache, W, acc)  # [B, T + W - 1, C]
        w = weight.to(acc)
        g = dy.to(acc)
        if activation == "silu" and T > 0:
            pre = F.conv1d(xp.transpose(1, 2), w[:, None, :], None if bias is None else bias.to(acc), groups=C)
            pre = pre.transpose(1, 2)
            sig = torch.sigmoid(pre)
            g = g * sig * (1 + pre * (1 - sig))
        if T > 0:
            gt = F.pad(g.transpose(1, 2), (W - 1, W - 1))
            dxp = F.conv1d(gt, w.flip(-1)[:, None, :], groups=C).transpose(1, 2)  # [B, T + W - 1, C]
        else:
            dxp = xp.new_zeros(B, W - 1, C)
        if dnew_cache is not None and W > 1:
            dxp = dxp.clone()
            dxp[:, T:] += dnew_cache.to(acc)
        dw = torch.einsum("btc,btcw->cw", g, xp.unfold(1, W, 1)) if T > 0 else torch.zeros_like(w)
        dx = _fresh(dxp[:, W - 1:], x.dtype)
        dcache = None if cache is None else _fresh(dxp[:, :W - 1], cache.dtype)
        db = None if bias is None else _fresh(g.sum((0, 1)), bias.dtype)
    return dx, _fresh(dw, weight.dtype), db, dcache


def _segments(x: torch.Tensor, cache: torch.Tensor | None, cu_seqlens: torch.Tensor):
    """``(n, x[:, a:b], cache[n:n + 1] or None)`` per packed sequence (reads the offsets on the host)."""
    offs = cu_seqlens.tolist()
    for n in range(len(offs) - 1):
        yield n, x[:, offs[n]:offs[n + 1]], None if cache is None else cache[n:n + 1]


def causal_conv1d_varlen_torch_fwd(x, weight, bias, activation, cache, cu_seqlens):
    """Varlen forward: :func:`causal_conv1d_torch_fwd` on each sequence of ``x`` ``[1, T, C]``.

    Returns:
        ``(y [1, T, C], new_cache [N, W - 1, C])`` in ``x.dtype``.
    """
    ys, ncs = [], []
    for _, x_n, c_n in _segments(x, cache, cu_seqlens):
        y, nc = causal_conv1d_torch_fwd(x_n, weight, bias, activation, c_n)
        ys.append(y)
        ncs.append(nc)
    return torch.cat(ys, 1), torch.cat(ncs, 0)


def causal_conv1d_varlen_torch_bwd(x, weight, bias, activation, cache, cu_seqlens, dy, dnew_cache):
    """Varlen backward: :func:`causal_conv1d_torch_bwd` on each sequence; ``d weight`` / ``d bias`` summed.

    Returns:
        ``(dx, dweight, dbias or None, dcache or None)`` in the dtypes of the inputs.
    """
    acc = _acc_dtype(x)
    dxs, dcs = [], []
    dw = torch.zeros(weight.shape, dtype=acc, device=x.device)
    db = None if bias is None else torch.zeros(bias.shape, dtype=acc, device=x.device)
    offs = cu_seqlens.tolist()
    for n, x_n, c_n in _segments(x, cache, cu_seqlens):
        dn = None if dnew_cache is None else dnew_cache[n:n + 1]
        dx_n, dw_n, db_n, dc_n = causal_conv1d_torch_bwd(x_n, weight, bias, activation, c_n,
                                                         dy[:, offs[n]:offs[n + 1]], dn)
        dxs.append(dx_n)
        dcs.append(dc_n)
        dw += dw_n.to(acc)
        if db is not None:
            db += db_n.to(acc)
    dcache = None if cache is None else torch.cat(dcs, 0)
    return (torch.cat(dxs, 1), _fresh(dw, weight.dtype), None if db is None else _fresh(db, bias.dtype), dcache)
