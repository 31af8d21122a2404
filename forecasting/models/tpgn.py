"""TPGN: Temporal Parallel Gated Network.

Jia et al., "PGN: The RNN's New Successor is Effective for Long-Range Time Series Forecasting", NeurIPS 2024,
Section 3.2 (TPGN); authors' code Water2sea/TPGN ``models/TPGN.py`` (shapes, gates and defaults match it).

The input ``[B, L, C]`` is reshaped by the period P into a 2D grid of ``R = L / P`` rows (periods) by P
columns (phases). Two branches, both with weights grouped per variable (``groups = C``):

* long-term (``PGN2d``): for every column, the Historical Information Extraction (HIE) layer is a linear map
  over the ``R - 1`` previous rows (zero padded, so row ``r`` sees rows ``< r``; all earlier rows in one step,
  the O(1) information path of PGN) of values plus calendar features, giving ``H [B, R, P, C, D]``; the gated
  unit mixes it with the current row: ``g = sigmoid(W_g [x; m; H])``, ``c = tanh(W_c [x; m; H])``,
  ``H' = g * H + (1 - g) * c``; a linear map over all R rows then gives one ``D``-vector per column.
* short-term (``ShortTerm``): each row (a patch of P steps) is mapped linearly to ``D``, then all rows are
  aggregated linearly into one ``D``-vector that is repeated for every column.

Fusion concatenates both branches per column (``2D``) and a grouped 1x1 map gives ``pred_len / P`` output
rows per column, read back row-major into ``[B, pred_len, C]``. ``norm=True`` subtracts the window mean and
divides by the window std (per variable) before, and undoes it after (the authors' ``--norm 1``).

Defaults are the authors' ``run.py``: ``d_model=32``, ``period=24``, hourly calendar features (4).
"""
from __future__ import annotations

import torch
from torch import nn


class GroupedConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters, so the authors' weights load) computed as one grouped einsum.

    TPGN's convolutions are per-variable linear maps over tiny lengths on huge batches, where oneDNN's
    grouped convolution is slow on CPU; unfolding and contracting is the same arithmetic, much faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, length = x.shape
        g, k = self.groups, self.kernel_size[0]
        cin, cout = self.in_channels // g, self.out_channels // g
        if k == 1:
            cols = x.reshape(n, g, cin, length, 1)
        else:
            cols = x.unfold(2, k, 1).reshape(n, g, cin, length - k + 1, k)  # [N, G, Cin, T', k]
        w = self.weight.reshape(g, cout, cin, k)
        y = torch.einsum("ngitk,goik->ngot", cols, w).reshape(n, g * cout, -1)
        return y + self.bias[None, :, None] if self.bias is not None else y


class PGN2d(nn.Module):
    """Long-term branch: HIE over earlier rows + gated unit + linear aggregation over rows.

    Args:
        seq_rows: R, rows of the input grid.
        n_vars: C, variables (one weight group each).
        d_model: D, hidden width per variable.
        n_time_features: F, calendar features appended to every value.
    """

    def __init__(self, seq_rows: int, n_vars: int, d_model: int, n_time_features: int) -> None:
        super().__init__()
        self.seq_rows, self.n_vars, self.d_model = seq_rows, n_vars, d_model
        self.window = seq_rows - 1
        width = 1 + n_time_features
        self.hie = GroupedConv1d(n_vars * width, n_vars * d_model, kernel_size=self.window, groups=n_vars)
        self.gate = GroupedConv1d(n_vars * (width + d_model), n_vars * 2 * d_model, kernel_size=1, groups=n_vars)
        self.fc = GroupedConv1d(n_vars * d_model, n_vars * d_model, kernel_size=seq_rows, groups=n_vars)

    def _hie(self, z: torch.Tensor) -> torch.Tensor:
        # z: [B, R, P, C, 1+F] -> H: [B, R, P, C, D]; row r sees rows r-window .. r-1 (zeros before row 0)
        b, r, p, c, w = z.shape
        pad = z.new_zeros(b, self.window, p, c, w)
        z = torch.cat([pad, z], dim=1).permute(0, 2, 1, 3, 4).reshape(b * p, r + self.window, c * w)
        h = self.hie(z.permute(0, 2, 1)[:, :, :-1])  # [B*P, C*D, R]
        return h.reshape(b, p, c, self.d_model, r).permute(0, 4, 1, 2, 3)

    def _gated(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        b, r, p, c, _ = z.shape
        u = torch.cat([z, h], dim=-1).reshape(b * r * p, -1, 1)  # [B*R*P, C*(1+F+D), 1]
        g, cand = self.gate(u).reshape(b, r, p, c, 2 * self.d_model).split(self.d_model, dim=-1)
        g = torch.sigmoid(g)
        return h * g + (1 - g) * torch.tanh(cand)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, R, P, C, 1+F]`` -> ``[B, P, C, D]``."""
        b, r, p, c, _ = z.shape
        h = self._gated(z, self._hie(z))  # [B, R, P, C, D]
        h = h.permute(0, 2, 3, 4, 1).reshape(b * p, c * self.d_model, r)
        return self.fc(h).reshape(b, p, c, self.d_model)


class ShortTerm(nn.Module):
    """Short-term branch: linear patch (row) embedding, linear aggregation over rows, repeated per column."""

    def __init__(self, seq_rows: int, period: int, n_vars: int, d_model: int, n_time_features: int) -> None:
        super().__init__()
        self.period, self.d_model = period, d_model
        self.fc_row = GroupedConv1d(n_vars * (1 + n_time_features), n_vars * d_model, kernel_size=period,
                                groups=n_vars)
        self.fc_col = GroupedConv1d(n_vars * d_model, n_vars * d_model, kernel_size=seq_rows, groups=n_vars)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, R, P, C, 1+F]`` -> ``[B, P, C, D]``."""
        b, r, p, c, w = z.shape
        rows = self.fc_row(z.permute(0, 1, 3, 4, 2).reshape(b * r, c * w, p))  # [B*R, C*D, 1]
        agg = self.fc_col(rows.reshape(b, r, c * self.d_model).permute(0, 2, 1))  # [B, C*D, 1]
        return agg.reshape(b, 1, c, self.d_model).expand(b, p, c, self.d_model)


class TPGN(nn.Module):
    """Temporal PGN forecaster, ``x [B, L, C]`` (+ calendar features ``[B, L, F]``) -> ``[B, H, C]``.

    Args:
        seq_len: lookback L, a multiple of ``period`` with at least two periods.
        pred_len: horizon H, a multiple of ``period``.
        n_vars: C, number of variables (channel groups).
        d_model: D, hidden width per variable (authors' default 32).
        period: P, the grid width (authors' default 24 for hourly data).
        n_time_features: F, calendar features per step (hourly 4, minutely 5, daily 3; 0 for none).
        norm: per-window normalisation (subtract mean, divide std; the authors' ``--norm 1``).
        short_term: keep the short-term branch (the authors' ``need_short``; False is their ablation).

    Raises:
        ValueError: if ``seq_len`` or ``pred_len`` is not a multiple of ``period`` or ``seq_len < 2 * period``;
            in ``forward``, if the inputs do not have the configured shapes.
    """

    def __init__(self, seq_len: int, pred_len: int, n_vars: int = 1, d_model: int = 32, period: int = 24,
                 n_time_features: int = 4, norm: bool = False, short_term: bool = True) -> None:
        super().__init__()
        if period < 1 or seq_len % period or pred_len % period:
            raise ValueError(f"TPGN needs seq_len and pred_len to be multiples of period={period}; "
                             f"got seq_len={seq_len}, pred_len={pred_len}")
        if seq_len < 2 * period:
            raise ValueError(f"TPGN needs seq_len >= 2 * period (at least two rows); got seq_len={seq_len}, "
                             f"period={period}")
        self.seq_len, self.pred_len, self.n_vars, self.d_model = seq_len, pred_len, n_vars, d_model
        self.period, self.n_time_features, self.norm, self.short_term = period, n_time_features, norm, short_term
        self.seq_rows, self.pred_rows = seq_len // period, pred_len // period
        self.long = PGN2d(self.seq_rows, n_vars, d_model, n_time_features)
        self.short = ShortTerm(self.seq_rows, period, n_vars, d_model, n_time_features) if short_term else None
        branches = 2 if short_term else 1
        self.head = GroupedConv1d(n_vars * branches * d_model, n_vars * self.pred_rows, kernel_size=1, groups=n_vars)

    def forward(self, x: torch.Tensor, x_mark: torch.Tensor | None = None) -> torch.Tensor:
        b, length, c = x.shape if x.ndim == 3 else (None, None, None)
        if x.ndim != 3 or length != self.seq_len or c != self.n_vars:
            raise ValueError(f"x must have shape [B, {self.seq_len}, {self.n_vars}], got {tuple(x.shape)}")
        if x_mark is None:
            if self.n_time_features:
                raise ValueError(f"TPGN was built with n_time_features={self.n_time_features}; pass x_mark "
                                 f"[B, {self.seq_len}, {self.n_time_features}]")
            x_mark = x.new_zeros(b, length, 0)
        if x_mark.shape != (b, length, self.n_time_features):
            raise ValueError(f"x_mark must have shape [B, {self.seq_len}, {self.n_time_features}], "
                             f"got {tuple(x_mark.shape)}")
        if self.norm:
            mean = x.mean(1, keepdim=True).detach()
            x = x - mean
            std = torch.sqrt(torch.var(x, dim=1, keepdim=True, unbiased=False) + 1e-5)
            x = x / std
        r, p, f = self.seq_rows, self.period, self.n_time_features
        grid = x.reshape(b, r, p, c).unsqueeze(-1)  # [B, R, P, C, 1]
        marks = x_mark.reshape(b, r, p, 1, f).expand(b, r, p, c, f)
        z = torch.cat([grid, marks.to(grid)], dim=-1)  # [B, R, P, C, 1+F]
        out = self.long(z)  # [B, P, C, D]
        if self.short is not None:
            out = torch.cat([self.short(z), out], dim=-1)  # [B, P, C, 2D] (short first, as the authors)
        out = self.head(out.reshape(b * p, -1, 1))  # [B*P, C*pred_rows, 1]
        y = out.reshape(b, p, c, self.pred_rows).permute(0, 3, 1, 2).reshape(b, self.pred_len, c)
        if self.norm:
            y = y * std + mean
        return y
