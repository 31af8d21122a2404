"""The dilated gated FSMN of MossFormer2 as a sequence mixer (the RNN-free "recurrent" module).

Zhao et al. (2024), "MossFormer2: Combining Transformer and RNN-Free Recurrent Network for Enhanced
Time-Domain Monaural Speech Separation", Sec. 3.2; reference code alibabasasr ClearerVoice-Studio
``models/mossformer2_ss/mossformer2.py`` (``Gated_FSMN_Block_Dilated``), ``fsmn.py``
(``UniDeepFsmn_dilated``, ``DilatedDenseNet``) and ``conv_module.py`` (``FFConvM``, ``ConvModule``).

Structure (``Gated_FSMN_Block_Dilated``): bottleneck ``Linear(D, inner) + PReLU`` -> LayerNorm ->
gated FSMN (``u = FFConvM(x)``, ``v = FFConvM(x)``, ``u = UniDeepFsmn_dilated(u)``, ``x + u * v``) ->
LayerNorm -> ``Linear(inner, D)``. ``FFConvM`` is LayerNorm -> Linear -> SiLU -> (x + depthwise conv) ->
dropout. ``UniDeepFsmn_dilated`` is ReLU(Linear) -> Linear -> a dense net of depthwise dilated convolutions
(dilation ``2^i``, each layer sees the concatenation of all earlier outputs) with a residual.

Deviations, both documented: (1) the block's own outer residual is left to the backbone (pre-norm residual
stack), so it is not added twice; (2) ``causal=True`` turns every convolution into a left-padded one
(``lorder`` taps for the FSMN memory, ``conv_kernel`` taps for ``ConvModule``) and replaces the dense
net's InstanceNorm (a statistic over time, which would leak the future) by a per-step LayerNorm; then
``step`` runs in constant memory with per-convolution caches. ``causal=False`` is the paper's layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.conv import ShortConvolution
from seqlab.core.registry import register_block
from torch import nn


class _Conv(nn.Module):
    """Grouped conv on ``[B, T, C]``: causal (with cache) or centred (the original symmetric padding)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, dilation: int, groups: int,
                 causal: bool, bias: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv = ShortConvolution(channels_in, kernel, out_channels=channels_out, dilation=dilation,
                                     groups=groups, bias=bias)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None):
        if self.causal:
            return self.conv(x, cache)
        c = self.conv
        pad = c.cache_len // 2
        y = F.conv1d(F.pad(x.transpose(1, 2), (pad, c.cache_len - pad)), c.weight, c.bias,
                     dilation=c.dilation, groups=c.groups)
        return y.transpose(1, 2), None


class _FFConvM(nn.Module):
    """LayerNorm -> Linear -> SiLU -> ``x + dwconv(x)`` (``ConvModule``) -> Dropout."""

    def __init__(self, dim_in: int, dim_out: int, conv_kernel: int, causal: bool, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.linear = nn.Linear(dim_in, dim_out)
        self.dwconv = _Conv(dim_out, dim_out, conv_kernel, 1, dim_out, causal, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cache):
        h = F.silu(self.linear(self.norm(x)))
        c, cache = self.dwconv(h, cache)
        return self.drop(h + c), cache


class _DilatedDenseNet(nn.Module):
    """Dense stack of depthwise dilated convs; layer i sees ``cat([out_{i-1}, ..., out_0, x])``."""

    def __init__(self, channels: int, depth: int, kernel: int, causal: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _Conv(channels * (i + 1), channels, kernel, 2 ** i, channels, causal, bias=False) for i in range(depth))
        norm = (lambda: nn.LayerNorm(channels)) if causal else (lambda: nn.InstanceNorm1d(channels, affine=True))
        self.norms = nn.ModuleList(norm() for _ in range(depth))
        self.acts = nn.ModuleList(nn.PReLU(channels) for _ in range(depth))
        self.causal = causal

    def forward(self, x, caches):
        skip, new = x, []
        for i, (conv, norm, act) in enumerate(zip(self.convs, self.norms, self.acts)):
            out, c = conv(skip, None if caches is None else caches[i])
            new.append(c)
            out = norm(out) if self.causal else norm(out.transpose(1, 2)).transpose(1, 2)
            out = act(out.transpose(1, 2)).transpose(1, 2)
            skip = torch.cat([out, skip], dim=-1)
        return out, new


@register_block("fsmn")
class GatedFSMN(nn.Module):
    """MossFormer2's dilated gated FSMN block; causal state: the convolution caches (constant in T).

    Args:
        d_model: input/output width.
        inner_channels: bottleneck width (default ``d_model // 2``; MossFormer2 uses 256 for 512).
        lorder: FSMN memory order (MossFormer2: 20): kernel ``2*lorder-1`` centred, or ``lorder`` causal.
        depth: layers of the dilated dense net (MossFormer2: 2).
        conv_kernel: kernel of the ``ConvModule`` depthwise conv inside ``FFConvM`` (MossFormer2: 17).
        causal: left-padded convolutions and per-step norms (see the module docstring).
        dropout: dropout of ``FFConvM`` (MossFormer2: 0.1).
    """

    def __init__(self, d_model: int, inner_channels: int | None = None, lorder: int = 20, depth: int = 2,
                 conv_kernel: int = 17, causal: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.causal = causal
        inner = inner_channels or max(d_model // 2, 1)
        self.inner = inner
        self.conv1 = nn.Linear(d_model, inner)
        self.act1 = nn.PReLU()
        self.norm1 = nn.LayerNorm(inner)
        self.to_u = _FFConvM(inner, inner, conv_kernel, causal, dropout)
        self.to_v = _FFConvM(inner, inner, conv_kernel, causal, dropout)
        self.fsmn_linear = nn.Linear(inner, inner)
        self.fsmn_project = nn.Linear(inner, inner, bias=False)
        self.dense = _DilatedDenseNet(inner, depth, lorder if causal else 2 * lorder - 1, causal)
        self.norm2 = nn.LayerNorm(inner)
        self.conv2 = nn.Linear(inner, d_model)

    def _convs(self):
        return [self.to_u.dwconv.conv, self.to_v.dwconv.conv] + [c.conv for c in self.dense.convs]

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero caches of every convolution (causal), or ``None``."""
        if not self.causal:
            return None
        return [c.init_cache(batch_size, device=device, dtype=dtype) for c in self._convs()]

    def forward(self, x: torch.Tensor, state=None):
        check_seq("fsmn", x, self.d_model)
        caches = state if (self.causal and state is not None) else [None] * len(self._convs())
        h = self.norm1(self.act1(self.conv1(x)))
        u, cu = self.to_u(h, caches[0])
        v, cv = self.to_v(h, caches[1])
        p = self.fsmn_project(F.relu(self.fsmn_linear(u)))
        d, cd = self.dense(p, caches[2:] if self.causal else None)
        u = u + d  # UniDeepFsmn_dilated residual
        h = h + v * u  # Gated_FSMN
        y = self.conv2(self.norm2(h))
        return y, ([cu, cv, *cd] if self.causal else None)

    def step(self, x_t: torch.Tensor, state):
        """One step with the convolution caches (causal only)."""
        if not self.causal:
            raise ValueError("fsmn: step needs causal=True")
        check_step("fsmn", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
