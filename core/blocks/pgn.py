"""The Parallel Gated Network (PGN) layer as a general causal sequence mixer.

Jia et al. (2024), "PGN: The RNN's New Successor is Effective for Long-Range Time Series Forecasting"
(NeurIPS), Sec. 3.1; reference code Water2sea/TPGN ``models/TPGN.py`` (``PGN_2d.deal`` and
``PGN_2d.gated_unit``). Two steps, both parallel over time:

1. Historical Information Extraction (HIE): ``H_t = HIE(x_{t-w}, ..., x_{t-1})``, a linear layer over
   the zero-padded window of all *earlier* steps (TPGN pads ``windows_size`` zeros in front and drops the
   last input, so step t never sees ``x_t``; it uses ``windows_size = seq_len - 1``, i.e. all history).
2. Gated unit: ``G = sigmoid(W_g [x_t, H_t])``, ``Hc = tanh(W_h [x_t, H_t])``,
   ``out_t = G * H_t + (1 - G) * Hc``.

For a width-D mixer the paper's full linear over ``window x D`` inputs would hold ``window * D^2``
weights; we use its depthwise-separable factorisation: a per-channel linear over the window (a causal
depthwise conv that excludes the current step) followed by a ``D x D`` linear. ``window`` bounds the
history (set it to the longest sequence to see all earlier steps); the step state is the last ``window``
inputs, constant in T.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.registry import register_block
from torch import nn


@register_block("pgn")
class PGN(nn.Module):
    """PGN layer; state: the last ``window`` inputs ``[B, D, window]``.

    Args:
        d_model: input/output width.
        window: number of earlier steps HIE reads (TPGN: ``seq_len - 1``).
        hidden: width of H (default ``d_model``); a linear maps the output back to ``d_model`` otherwise.
    """

    causal = True

    def __init__(self, d_model: int, window: int = 128, hidden: int | None = None) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"pgn: window must be >= 1, got {window}")
        self.d_model = d_model
        self.window = window
        hidden = hidden or d_model
        self.hie_time = nn.Parameter(torch.empty(d_model, 1, window).uniform_(-1.0 / window, 1.0 / window))
        self.hie_channel = nn.Linear(d_model, hidden)
        self.gate = nn.Linear(d_model + hidden, 2 * hidden)
        self.out_proj = nn.Linear(hidden, d_model) if hidden != d_model else nn.Identity()

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        """Zero history ``[B, D, window]``."""
        return torch.zeros(batch_size, self.d_model, self.window, device=device, dtype=dtype or self.hie_time.dtype)

    def forward(self, x: torch.Tensor, state=None):
        check_seq("pgn", x, self.d_model)
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        elif state.shape != (x.shape[0], self.d_model, self.window):
            raise ValueError(f"pgn: expected state of shape [{x.shape[0]}, {self.d_model}, {self.window}], "
                             f"got {tuple(state.shape)}")
        xp = torch.cat([state.to(x.dtype), x.transpose(1, 2)], dim=-1)  # [B, D, window + T]
        # output t reads x_{t-window} .. x_{t-1}: the last input is never seen by its own step (TPGN `[:-1]`)
        hist = F.conv1d(xp[..., :-1], self.hie_time.to(x.dtype), groups=self.d_model).transpose(1, 2)
        state = xp[..., xp.shape[-1] - self.window:]
        h = self.hie_channel(hist)
        sig, cand = self.gate(torch.cat([x, h], dim=-1)).chunk(2, dim=-1)
        g = torch.sigmoid(sig)
        out = g * h + (1 - g) * torch.tanh(cand)
        return self.out_proj(out), state

    def step(self, x_t: torch.Tensor, state):
        """One step with the history cache."""
        check_step("pgn", x_t, self.d_model)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state
