"""The mamba2 block against a step-by-step SSD recurrence written out here (float64), with grouped B/C.

mamba_ssm's ``Mamba2Simple`` maps head ``h`` to B/C group ``h // (nheads // ngroups)``
(``repeat(B, "b l g n -> b l (g h) n")``); the block passes the groups to ``simple_gla`` without copying them
per head, so this checks the mapping and the whole layer (conv, dt, decay, D skip, gated norm) end to end.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqlab.core.blocks.mamba2 import Mamba2


def _reference(m: Mamba2, x: torch.Tensor) -> torch.Tensor:
    b, t, _ = x.shape
    H, P, N, G = m.nheads, m.headdim, m.d_state, m.ngroups
    z, xbc, dt = m.in_proj(x).split([m.d_inner, m.conv_dim, H], dim=-1)
    W = m.conv1d.weight.shape[-1]
    xp = F.pad(xbc.transpose(1, 2), (W - 1, 0))
    xbc = F.silu(F.conv1d(xp, m.conv1d.weight, m.conv1d.bias, groups=m.conv_dim)).transpose(1, 2)
    xs, B, C = xbc.split([m.d_inner, G * N, G * N], dim=-1)
    xs, B, C = xs.view(b, t, H, P), B.view(b, t, G, N), C.view(b, t, G, N)
    dt = F.softplus(dt + m.dt_bias)
    A = -torch.exp(m.A_log)
    h = torch.zeros(b, H, N, P, dtype=x.dtype)
    ys = []
    for s in range(t):
        ys_t = []
        for hd in range(H):
            g = hd // (H // G)
            h[:, hd] = torch.exp(dt[:, s, hd] * A[hd])[:, None, None] * h[:, hd] + \
                B[:, s, g, :, None] * (dt[:, s, hd, None] * xs[:, s, hd])[:, None, :]
            ys_t.append(torch.einsum("bn,bnp->bp", C[:, s, g], h[:, hd]) + m.D[hd] * xs[:, s, hd])
        ys.append(torch.stack(ys_t, 1))
    y = torch.stack(ys, 1).reshape(b, t, m.d_inner)
    y = y * F.silu(z)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + m.norm.eps) * m.norm.weight
    return m.out_proj(y)


@pytest.mark.parametrize("ngroups", [1, 2])
def test_mamba2_matches_stepwise_ssd_with_groups(ngroups):
    torch.manual_seed(ngroups)
    m = Mamba2(16, d_state=8, headdim=8, expand=2, ngroups=ngroups).double()
    with torch.no_grad():  # distinct per-head decays and a non-trivial norm weight
        m.norm.weight.uniform_(0.5, 1.5)
        m.D.uniform_(-1, 1)
    x = torch.randn(2, 37, 16, dtype=torch.float64)
    y, _ = m(x)
    ref = _reference(m, x)
    assert torch.allclose(y, ref, rtol=1e-9, atol=1e-10), (y - ref).abs().max()
