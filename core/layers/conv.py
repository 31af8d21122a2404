"""Causal 1-D convolution over ``[B, T, C]`` with a step cache (the ``ShortConvolution`` of Mamba / fla)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ShortConvolution(nn.Module):
    """Causal (left-padded) grouped conv1d on ``[B, T, C]`` that carries its last inputs as a cache.

    Depthwise by default (``groups = in_channels``), as the short convolutions of Mamba
    (``mamba_simple.py``: ``conv1d`` with ``padding=d_conv-1``) and fla's ``ShortConvolution``. The cache
    holds the last ``(kernel_size - 1) * dilation`` inputs, so running two halves with the cache carried
    equals running the whole, and ``T = 1`` calls are the constant-memory step.

    Args:
        in_channels: input channels C.
        kernel_size: taps, the current step included.
        out_channels: output channels (default ``in_channels``); must be a multiple of ``groups``.
        dilation: spacing of the taps.
        groups: conv groups (default ``in_channels``: depthwise).
        bias: learn a bias.
        activation: ``None``, ``"silu"`` or ``"relu"``, applied to the output.
    """

    def __init__(self, in_channels: int, kernel_size: int, *, out_channels: int | None = None,
                 dilation: int = 1, groups: int | None = None, bias: bool = True,
                 activation: str | None = None) -> None:
        super().__init__()
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"ShortConvolution: kernel_size and dilation must be >= 1, got {kernel_size}, {dilation}")
        if activation not in (None, "silu", "relu"):
            raise ValueError(f"ShortConvolution: activation must be None, 'silu' or 'relu', got {activation!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.groups = groups or in_channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(self.out_channels, in_channels // self.groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(self.out_channels)) if bias else None
        bound = 1.0 / math.sqrt(in_channels // self.groups * kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def cache_len(self) -> int:
        """Number of past inputs the cache keeps."""
        return (self.kernel_size - 1) * self.dilation

    def init_cache(self, batch_size: int, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
        """A zero cache ``[B, C, (kernel_size - 1) * dilation]``."""
        return torch.zeros(batch_size, self.in_channels, self.cache_len, device=device,
                           dtype=dtype or self.weight.dtype)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Convolve ``x`` ``[B, T, C]`` causally; returns ``(y [B, T, C_out], new_cache [B, C, L])``."""
        if x.dim() != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"ShortConvolution: expected x of shape [B, T, {self.in_channels}], got {tuple(x.shape)}")
        if self._fused_ok(x):
            return self._fused(x, cache)
        xt = x.transpose(1, 2)  # [B, C, T]
        if cache is None:
            cache = self.init_cache(x.shape[0], device=x.device, dtype=x.dtype)
        elif cache.shape != (x.shape[0], self.in_channels, self.cache_len):
            raise ValueError(f"ShortConvolution: expected cache of shape [{x.shape[0]}, {self.in_channels}, "
                             f"{self.cache_len}], got {tuple(cache.shape)}")
        xp = torch.cat([cache.to(xt.dtype), xt], dim=-1)
        y = F.conv1d(xp, self.weight.to(xt.dtype), None if self.bias is None else self.bias.to(xt.dtype),
                     dilation=self.dilation, groups=self.groups)
        new_cache = xp[..., xp.shape[-1] - self.cache_len:]
        if self.activation == "silu":
            y = F.silu(y)
        elif self.activation == "relu":
            y = F.relu(y)
        return y.transpose(1, 2), new_cache

    def _fused_ok(self, x: torch.Tensor) -> bool:
        """The depthwise, undilated, SiLU-or-linear case in float32/16/bf16 runs as ``seqlab.kernels.causal_conv1d``
        on the ``[B, T, C]`` layout (one Triton kernel each way on the GPU, no transposes or concatenation)."""
        return (self.groups == self.in_channels == self.out_channels and self.dilation == 1
                and self.activation in (None, "silu") and self.cache_len > 0
                and x.dtype in (torch.float32, torch.float16, torch.bfloat16))

    def _fused(self, x: torch.Tensor, cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        from seqlab.kernels import causal_conv1d

        if cache is not None:
            if cache.shape != (x.shape[0], self.in_channels, self.cache_len):
                raise ValueError(f"ShortConvolution: expected cache of shape [{x.shape[0]}, {self.in_channels}, "
                                 f"{self.cache_len}], got {tuple(cache.shape)}")
            cache = cache.to(x.dtype).transpose(1, 2).contiguous()  # [B, W - 1, C], tiny
        y, new_cache = causal_conv1d(x.contiguous(), self.weight[:, 0], self.bias, activation=self.activation,
                                     cache=cache)
        return y, new_cache.transpose(1, 2)
