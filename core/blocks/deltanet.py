"""DeltaNet layer over ``seqlab.kernels.delta_rule``, with the negative-eigenvalue option.

Yang et al. (2024), "Parallelizing Linear Transformers with the Delta Rule over Sequence Length",
Sec. 3-4 (the delta rule ``S_t = S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T``, short convolutions,
SiLU + L2-normalised q/k, sigmoid beta, per-head output norm); reference code
fla-org/flash-linear-attention ``fla/layers/delta_net.py`` (``DeltaNet``). ``allow_neg_eigval=True``
doubles beta (range [0, 2]) so the transition ``I - beta k k^T`` has an eigenvalue in [-1, 1]
(Grazzi et al., 2025, "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues"), which
lets the layer track parity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks import _ops
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.conv import ShortConvolution
from seqlab.core.layers.norm import GatedRMSNorm, RMSNorm
from seqlab.core.registry import register_block
from torch import nn


@register_block("deltanet")
class DeltaNet(nn.Module):
    """DeltaNet; state ``{"q_conv", "k_conv", "v_conv": conv caches, "S": [B, H, K_head, V_head] fp32}``.

    Args:
        d_model: input/output width.
        num_heads: heads.
        expand_k: key width ``expand_k * d_model``.
        expand_v: value width ``expand_v * d_model``.
        use_short_conv: causal depthwise convs (kernel ``conv_size``, SiLU) on q, k and v.
        conv_size: short conv kernel.
        use_gate: swish output gate with ``rmsnorm(o) * silu(g)`` (else plain per-head RMSNorm).
        allow_neg_eigval: beta in [0, 2] instead of [0, 1].
        norm_eps: eps of the output norm.
    """

    causal = True

    def __init__(self, d_model: int, num_heads: int = 4, expand_k: float = 1.0, expand_v: float = 1.0,
                 use_short_conv: bool = True, conv_size: int = 4, use_gate: bool = False,
                 allow_neg_eigval: bool = False, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.d_model, self.num_heads = d_model, num_heads
        self.key_dim, self.value_dim = int(d_model * expand_k), int(d_model * expand_v)
        if self.key_dim % num_heads or self.value_dim % num_heads:
            raise ValueError(f"deltanet: key/value widths {self.key_dim}/{self.value_dim} must be divisible by "
                             f"num_heads={num_heads}")
        self.head_k, self.head_v = self.key_dim // num_heads, self.value_dim // num_heads
        self.allow_neg_eigval = allow_neg_eigval
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.b_proj = nn.Linear(d_model, num_heads, bias=False)
        self.use_short_conv = use_short_conv
        if use_short_conv:
            self.q_conv1d = ShortConvolution(self.key_dim, conv_size, bias=False, activation="silu")
            self.k_conv1d = ShortConvolution(self.key_dim, conv_size, bias=False, activation="silu")
            self.v_conv1d = ShortConvolution(self.value_dim, conv_size, bias=False, activation="silu")
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False) if use_gate else None
        self.o_norm = GatedRMSNorm(self.head_v, eps=norm_eps) if use_gate else RMSNorm(self.head_v, eps=norm_eps)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero conv caches and delta-rule state."""
        dtype = dtype or self.q_proj.weight.dtype
        sdt = torch.float64 if dtype == torch.float64 else torch.float32
        st = {"S": torch.zeros(batch_size, self.num_heads, self.head_k, self.head_v, device=device, dtype=sdt)}
        if self.use_short_conv:
            for n in ("q", "k", "v"):
                st[f"{n}_conv"] = getattr(self, f"{n}_conv1d").init_cache(batch_size, device=device, dtype=dtype)
        return st

    def forward(self, x: torch.Tensor, state=None):
        check_seq("deltanet", x, self.d_model)
        b, t, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        new = {}
        if self.use_short_conv:
            q, new["q_conv"] = self.q_conv1d(q, None if state is None else state["q_conv"])
            k, new["k_conv"] = self.k_conv1d(k, None if state is None else state["k_conv"])
            v, new["v_conv"] = self.v_conv1d(v, None if state is None else state["v_conv"])
        else:  # fla: silu on q/k/v when there is no conv
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        q = q.view(b, t, self.num_heads, self.head_k)
        k = k.view(b, t, self.num_heads, self.head_k)
        v = v.view(b, t, self.num_heads, self.head_v)
        beta = torch.sigmoid(self.b_proj(x).float() if x.dtype != torch.float64 else self.b_proj(x))
        o, new["S"] = _ops.delta_rule(q, k, v, beta, self.head_k ** -0.5, None if state is None else state["S"],
                                      qk_l2norm=True, allow_neg_eigval=self.allow_neg_eigval)
        if self.g_proj is not None:
            o = self.o_norm(o, self.g_proj(x).view(b, t, self.num_heads, self.head_v))
        else:
            o = self.o_norm(o)
        return self.o_proj(o.reshape(b, t, self.value_dim)), new

    def step(self, x_t: torch.Tensor, state):
        """One token in constant memory (the T = 1 case of ``forward``)."""
        check_step("deltanet", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
