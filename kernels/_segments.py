"""Sequence plumbing shared by the Kernels II ops (gla, delta_rule, prefix_attention).

Every op is written for left-to-right scans over dense ``[B, T, ...]`` batches; ``reverse=True`` and
``cu_seqlens`` varlen are expressed here with plain tensor ops (traceable by ``torch.compile``):
``reverse`` is a time flip inside each sequence (an index gather), varlen in the PyTorch reference is a loop
over the packed sequences.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def reverse_index(T: int, cu_seqlens: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Index that flips time inside every sequence: ``x[:, idx]`` reverses each segment.

    Args:
        T: packed length.
        cu_seqlens: offsets ``[N + 1]`` (FlashAttention convention) or None for one dense sequence.
        device: where the index lives.
    """
    t = torch.arange(T, device=device)
    if cu_seqlens is None:
        return T - 1 - t
    cu = cu_seqlens.to(device=device, dtype=torch.long)
    seg = torch.searchsorted(cu[1:], t, right=True)
    return cu[seg] + cu[seg + 1] - 1 - t


def flip_time(x: torch.Tensor | None, idx: torch.Tensor | None) -> torch.Tensor | None:
    """``x[:, idx]`` for ``[B, T, ...]`` tensors (None passes through; idx None means no flip)."""
    if x is None or idx is None:
        return x
    return x.index_select(1, idx)


def per_sequence(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    seq_tensors: tuple[torch.Tensor | None, ...],
    initial_state: tuple[torch.Tensor, ...] | torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
    output_final_state: bool,
) -> tuple[torch.Tensor, object]:
    """Run a dense-batch scan ``fn(*seq_tensors, initial_state, output_final_state)`` on each packed sequence.

    ``seq_tensors`` are ``[1, T, ...]`` (None allowed); ``initial_state`` is a tensor ``[N, ...]`` or a tuple
    of them; ``fn`` returns ``(o [1, L, ...], state)`` with state shaped like ``initial_state`` with N = 1.
    Returns the concatenated output and the stacked final states (None when not asked for).
    """
    if cu_seqlens is None:
        return fn(*seq_tensors, initial_state, output_final_state)
    offs = cu_seqlens.tolist()
    outs, states = [], []
    for n in range(len(offs) - 1):
        a, b = offs[n], offs[n + 1]
        xs = tuple(None if x is None else x[:, a:b] for x in seq_tensors)
        if initial_state is None:
            h0 = None
        elif isinstance(initial_state, tuple):
            h0 = tuple(s[n:n + 1] for s in initial_state)
        else:
            h0 = initial_state[n:n + 1]
        o, st = fn(*xs, h0, output_final_state)
        outs.append(o)
        states.append(st)
    o = torch.cat(outs, dim=1)
    if not output_final_state:
        return o, None
    if isinstance(states[0], tuple):
        return o, tuple(torch.cat([s[i] for s in states], 0) for i in range(len(states[0])))
    return o, torch.cat(states, 0)
