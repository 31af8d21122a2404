"""LSTM and GRU mixers over cuDNN-backed ``torch.nn.LSTM`` / ``torch.nn.GRU``.

Hochreiter & Schmidhuber (1997), "Long Short-Term Memory"; Cho et al. (2014), GRU. The state is the
stack of hidden (and cell) vectors ``[num_layers, B, hidden]``: constant in T.
"""
from __future__ import annotations

import torch
from seqlab.core.blocks._common import check_seq, check_step
from seqlab.core.registry import register_block
from torch import nn


class _TorchRNN(nn.Module):
    causal = True
    _name = "rnn"
    _cls: type[nn.RNNBase] = nn.RNNBase

    def __init__(self, d_model: int, hidden_size: int | None = None, num_layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.hidden_size = hidden_size or d_model
        self.num_layers = num_layers
        self.rnn = self._cls(d_model, self.hidden_size, num_layers=num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)
        self.out_proj = nn.Linear(self.hidden_size, d_model) if self.hidden_size != d_model else nn.Identity()

    def forward(self, x: torch.Tensor, state=None):
        check_seq(self._name, x, self.d_model)
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        y, state = self.rnn(x, state)
        return self.out_proj(y), state

    def step(self, x_t: torch.Tensor, state):
        check_step(self._name, x_t, self.d_model)
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state


@register_block("lstm")
class LSTMBlock(_TorchRNN):
    """LSTM mixer; state ``(h, c)``, each ``[num_layers, B, hidden_size]``.

    Args:
        d_model: input/output width.
        hidden_size: LSTM width (default ``d_model``; a linear maps it back to ``d_model`` otherwise).
        num_layers: stacked LSTM layers.
        dropout: dropout between stacked layers.
    """

    _name = "lstm"
    _cls = nn.LSTM

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        dtype = dtype or self.rnn.weight_ih_l0.dtype
        z = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device, dtype=dtype)
        return (z, z.clone())


@register_block("gru")
class GRUBlock(_TorchRNN):
    """GRU mixer; state ``h`` ``[num_layers, B, hidden_size]``.

    Args:
        d_model: input/output width.
        hidden_size: GRU width (default ``d_model``).
        num_layers: stacked GRU layers.
        dropout: dropout between stacked layers.
    """

    _name = "gru"
    _cls = nn.GRU

    def init_state(self, batch_size: int, *, device=None, dtype=None):
        dtype = dtype or self.rnn.weight_ih_l0.dtype
        return torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device, dtype=dtype)
