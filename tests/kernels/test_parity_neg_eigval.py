"""Negative eigenvalues let one delta-rule layer track parity (Grazzi et al. 2024, "Unlocking State-Tracking in
Linear RNNs Through Negative Eigenvalues", section 4 / fig. 3): trained on length 64, tested on length 256.

With ``allow_neg_eigval=True`` the transition ``I - 2 beta k k^T`` of a unit key reaches the reflection
(eigenvalue -1, beta -> 1 before doubling) that flips the state component along ``k`` on every 1 bit, and the
identity (beta -> 0) on every 0 bit; the learned initial state gives the reflection something to flip. With beta
in [0, 1] every eigenvalue of the transition is in [0, 1], so the sign of no state component can ever flip and
the layer cannot represent parity beyond the lengths whose statistics it memorised.

Recipe (after Grazzi et al.; fla ``DeltaNet(allow_neg_eigval=True)``): one head, K = V = 4, per-token key,
value and beta embeddings, ``beta = sigmoid(10 * e)`` (the factor lets Adam saturate beta at 0 / 1 within a few
hundred steps; with lr 1e-2 an unscaled logit moves by at most ~3, leaving a decay of ~5% per step that erases
the sign after ~100 tokens), a learned initial state, a learned query, L2-normalised output (as fla's output
norm) and a small MLP readout. Cross-entropy on the prefix parity at every position. The recurrent mode is
used because at K = 4 the step loop is ~10x faster on CPU than the chunked form; the op's modes agree
(tests/kernels/test_delta_rule.py).
"""
from __future__ import annotations

import torch
from seqlab.kernels import delta_rule
from torch import nn


class ParityDelta(nn.Module):
    """Bit embeddings -> one delta-rule head (learned h0 and query) -> normalised output -> MLP readout."""

    def __init__(self, neg_eigval: bool, dk: int = 4, dv: int = 4, hidden: int = 16) -> None:
        super().__init__()
        self.neg = neg_eigval
        self.k = nn.Embedding(2, dk)
        self.v = nn.Embedding(2, dv)
        self.beta_logit = nn.Embedding(2, 1)
        nn.init.zeros_(self.beta_logit.weight)  # start at beta = 1/2: neither identity nor reflection
        self.q = nn.Parameter(torch.randn(dk))
        self.h0 = nn.Parameter(torch.randn(1, 1, dk, dv))
        self.out = nn.Sequential(nn.Linear(dv, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def beta(self) -> torch.Tensor:
        """beta in [0, 1] per bit value (doubled inside the op when ``allow_neg_eigval``)."""
        return torch.sigmoid(10.0 * self.beta_logit.weight[:, 0])

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        B, T = bits.shape
        k = self.k(bits)[:, :, None].contiguous()  # [B, T, 1, K]
        v = self.v(bits)[:, :, None].contiguous()  # [B, T, 1, V]
        beta = self.beta()[bits][:, :, None].contiguous()  # [B, T, 1]
        q = self.q.expand(B, T, 1, -1).contiguous()
        h0 = self.h0.expand(B, -1, -1, -1).contiguous()
        o, _ = delta_rule(q, k, v, beta, scale=1.0, qk_l2norm=True, allow_neg_eigval=self.neg, initial_state=h0,
                          mode="fused_recurrent", backend="torch")
        return self.out(nn.functional.normalize(o[:, :, 0], dim=-1, eps=1e-12))


def train_and_eval(neg: bool, seed: int = 0, steps: int = 150, batch: int = 64) -> float:
    """Train on length-64 prefix parity; return per-position accuracy on length-256 sequences."""
    torch.manual_seed(seed)
    model = ParityDelta(neg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed + 100)
    for _ in range(steps):
        bits = torch.randint(0, 2, (batch, 64), generator=gen)
        loss = nn.functional.cross_entropy(model(bits).flatten(0, 1), (bits.cumsum(1) % 2).flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        bits = torch.randint(0, 2, (128, 256), generator=gen)
        pred = model(bits).argmax(-1)
        return (pred == bits.cumsum(1) % 2).float().mean().item()


def test_parity_needs_negative_eigenvalues():
    acc_neg = train_and_eval(True)
    acc_pos = train_and_eval(False)
    assert acc_neg >= 0.95, f"allow_neg_eigval=True: length-256 parity accuracy {acc_neg:.3f}"
    assert acc_pos < 0.6, f"beta in [0, 1]: length-256 parity accuracy {acc_pos:.3f} (should be near chance)"

