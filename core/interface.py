"""The shared sequence-mixer interface every block implements (see DESIGN.md, Shared block interface)."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class SequenceMixer(Protocol):
    """A token mixer over ``[B, T, D]`` sequences.

    Attributes:
        d_model: width D of the input and output.
        causal: True if output t depends only on inputs <= t (then ``step`` exists and equals ``forward``).

    ``forward(x, state=None) -> (y, state)``: ``x`` is ``[B, T, D]``; ``state`` is whatever ``init_state``
    returns (or None for a zero state); the returned state continues the sequence, so running two halves
    with the state carried equals running the whole. Non-causal blocks return ``None`` as state.
    """

    d_model: int
    causal: bool

    def forward(self, x: torch.Tensor, state: Any | None = None) -> tuple[torch.Tensor, Any]: ...

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> Any: ...


@runtime_checkable
class RecurrentMixer(SequenceMixer, Protocol):
    """A causal mixer with a constant-memory ``step(x_t, state) -> (y_t, state)`` on ``x_t`` of ``[B, D]``."""

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...
