"""Negative eigenvalues let one delta-rule layer track parity (Grazzi et al. 2024, "Unlocking State-Tracking in
Linear RNNs Through Negative Eigenvalues", section 4 / fig. 3): trained on length 64, tested on length 256.

With ``allow_neg_eigval=True`` the transition ``I - 2 beta k k^T`` reaches the reflection (eigenvalue -1) that
flips a state component on every 1 bit; with beta in [0, 1] every eigenvalue is in [0, 1] and the layer cannot
represent parity beyond the lengths it memorised.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlab.kernels import delta_rule


class ParityDelta(nn.Module):
    """Token embedding -> q, k, v, beta projections -> one delta-rule layer -> linear readout."""

    def __init__(self, neg_eigval: bool, d: int = 16, dk: int = 4) -> None:
        super().__init__()
        self.neg = neg_eigval
        self.emb = nn.Embedding(2, d)
        self.qkv = nn.Linear(d, 3 * dk)
        self.beta = nn.Linear(d, 1)
        self.out = nn.Sequential(nn.Linear(dk, d), nn.ReLU(), nn.Linear(d, 2))
        self.dk = dk

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        x = self.emb(bits)  # [B, T, d]
        q, k, v = self.qkv(x).split(self.dk, -1)
        beta = torch.sigmoid(self.beta(x))[..., 0]
        o, _ = delta_rule(q[:, :, None].contiguous(), k[:, :, None].contiguous(), v[:, :, None].contiguous(),
                          beta[:, :, None].contiguous(), scale=1.0, qk_l2norm=True,
                          allow_neg_eigval=self.neg, backend="torch")
        return self.out(o[:, :, 0])


def _train_and_eval(neg: bool) -> float:
    torch.manual_seed(0)
    model = ParityDelta(neg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        bits = torch.randint(0, 2, (32, 64), generator=gen)
        target = bits.cumsum(1) % 2
        loss = nn.functional.cross_entropy(model(bits).flatten(0, 1), target.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        bits = torch.randint(0, 2, (64, 256), generator=gen)
        pred = model(bits).argmax(-1)
        return (pred[:, -1] == bits.sum(1) % 2).float().mean().item()


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="not yet tuned: with this recipe (300 Adam steps, ~200 s on 2 cores) both "
                   "variants stay at chance on length 256; the recipe still has to be found")
def test_parity_needs_negative_eigenvalues():
    acc_neg = _train_and_eval(True)
    acc_pos = _train_and_eval(False)
    assert acc_neg > 0.95, f"allow_neg_eigval=True: length-256 parity accuracy {acc_neg:.2f}"
    assert acc_pos < 0.75, f"beta in [0, 1]: length-256 parity accuracy {acc_pos:.2f} (should be near chance)"
