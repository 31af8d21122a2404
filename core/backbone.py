"""``SequenceBackbone``: a pre-norm residual stack of any pattern of registered blocks, each with an MLP.

Layer ``i``: ``x = x + drop(mixer_i(norm(x)))``, then ``x = x + drop(mlp_i(norm(x)))`` (pre-norm
Transformer layout, as in GPT-2 / LLaMA / Mamba's ``Block``); a final norm closes the stack. Patterns mix
families, e.g. GSM++'s hybrid ``["mamba", "mamba", "attention"]``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.utils.checkpoint
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.layers.mlp import MLP, SwiGLU
from seqlab.core.layers.norm import RMSNorm
from seqlab.core.registry import create_block
from torch import nn


def _norm(kind: str, d: int) -> nn.Module:
    if kind == "rms":
        return RMSNorm(d)
    if kind == "layer":
        return nn.LayerNorm(d)
    raise ValueError(f"SequenceBackbone: norm must be 'rms' or 'layer', got {kind!r}")


class _Layer(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp: str | None, mlp_ratio: float, norm: str,
                 dropout: float) -> None:
        super().__init__()
        self.mixer = mixer
        self.norm1 = _norm(norm, d_model)
        hidden = max(int(mlp_ratio * d_model), 1)
        if mlp is None or mlp == "none":
            self.mlp, self.norm2 = None, None
        elif mlp == "swiglu":
            self.mlp, self.norm2 = SwiGLU(d_model, hidden, dropout), _norm(norm, d_model)
        elif mlp == "gelu":
            self.mlp, self.norm2 = MLP(d_model, hidden, dropout), _norm(norm, d_model)
        else:
            raise ValueError(f"SequenceBackbone: mlp must be 'swiglu', 'gelu' or None, got {mlp!r}")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, state: Any = None):
        y, state = self.mixer(self.norm1(x), state)
        x = x + self.drop(y)
        if self.mlp is not None:
            x = x + self.drop(self.mlp(self.norm2(x)))
        return x, state

    def step(self, x_t: torch.Tensor, state: Any):
        y, state = self.mixer.step(self.norm1(x_t), state)
        x_t = x_t + y
        if self.mlp is not None:
            x_t = x_t + self.mlp(self.norm2(x_t))
        return x_t, state


class SequenceBackbone(nn.Module):
    """Pre-norm residual stack of registered blocks; itself a ``SequenceMixer`` on ``[B, T, D]``.

    Args:
        d_model: width D.
        blocks: one block name (repeated ``n_layers`` times) or a pattern of names (repeated cyclically
            up to ``n_layers``; its own length if ``n_layers`` is None).
        n_layers: number of layers.
        block_kwargs: per-block-name keyword arguments, e.g. ``{"attention": {"num_heads": 8}}``.
        mlp: channel mixer after each block: ``"swiglu"``, ``"gelu"`` or None.
        mlp_ratio: MLP hidden width as a multiple of D.
        norm: ``"rms"`` or ``"layer"``.
        dropout: dropout on each residual branch.
        gradient_checkpointing: recompute each layer in the backward pass (training without state only).

    Attributes:
        causal: True when every block is causal (then ``step`` exists).
    """

    def __init__(self, d_model: int, blocks: str | Sequence[str] = "mamba", n_layers: int | None = None,
                 block_kwargs: dict[str, dict[str, Any]] | None = None, mlp: str | None = "swiglu",
                 mlp_ratio: float = 4.0, norm: str = "rms", dropout: float = 0.0,
                 gradient_checkpointing: bool = False) -> None:
        super().__init__()
        pattern = [blocks] if isinstance(blocks, str) else list(blocks)
        if not pattern:
            raise ValueError("SequenceBackbone: blocks must name at least one block")
        n = n_layers if n_layers is not None else len(pattern)
        if n < 1:
            raise ValueError(f"SequenceBackbone: n_layers must be >= 1, got {n}")
        block_kwargs = dict(block_kwargs or {})
        unknown = set(block_kwargs) - set(pattern)
        if unknown:
            raise ValueError(f"SequenceBackbone: block_kwargs names blocks not in the pattern: {sorted(unknown)}")
        self.d_model = d_model
        self.pattern = [pattern[i % len(pattern)] for i in range(n)]
        self.layers = nn.ModuleList(
            _Layer(create_block(name, d_model, **dict(block_kwargs.get(name, {}))), d_model, mlp, mlp_ratio,
                   norm, dropout) for name in self.pattern)
        self.norm_f = _norm(norm, d_model)
        self.gradient_checkpointing = gradient_checkpointing
        self.causal = all(getattr(layer.mixer, "causal", False) for layer in self.layers)

    def init_state(self, batch_size: int, *, device=None, dtype=None) -> list[Any]:
        """One state per layer."""
        return [layer.mixer.init_state(batch_size, device=device, dtype=dtype) for layer in self.layers]

    def forward(self, x: torch.Tensor, state: list[Any] | None = None):
        """Run the stack on ``x`` ``[B, T, D]``; returns ``(y, per-layer states)``."""
        check_seq("SequenceBackbone", x, self.d_model)
        if state is not None and len(state) != len(self.layers):
            raise ValueError(f"SequenceBackbone: expected a state list of {len(self.layers)} entries, got {len(state)}")
        states = state if state is not None else [None] * len(self.layers)
        new = []
        for layer, s in zip(self.layers, states):
            if self.gradient_checkpointing and self.training and s is None and torch.is_grad_enabled():
                x, s = torch.utils.checkpoint.checkpoint(layer, x, None, use_reentrant=False)
            else:
                x, s = layer(x, s)
            new.append(s)
        return self.norm_f(x), new

    def step(self, x_t: torch.Tensor, state: list[Any] | None):
        """One token ``[B, D]`` through every layer (causal stacks only)."""
        if not self.causal:
            raise ValueError(f"SequenceBackbone: step needs every block to be causal; pattern is {self.pattern}")
        check_step("SequenceBackbone", x_t, self.d_model)
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        new = []
        for layer, s in zip(self.layers, state):
            x_t, s = layer.step(x_t, s)
            new.append(s)
        return self.norm_f(x_t), new
