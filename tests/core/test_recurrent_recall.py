"""Mamba and GLA carry information across time: sanity checks behind the MQAR rows of benchmarks/synthetic.py.

A GPU MQAR run (T=256, 16 pairs, 2000 steps) left ``mamba`` and ``gla`` at chance; these checks show the
blocks themselves remember earlier tokens (nonzero gradient of ``y_t`` with respect to ``x_0``, none to the
future) and that one layer of either learns a small associative recall in a few hundred steps. A memoryless
copy of each block (its scan cut to one step) is the negative control: the same training must fail.
"""
import pytest
import torch
import torch.nn.functional as F
from seqlab.core import get_block_class
from seqlab.core.blocks import _ops
from torch import nn

KW = {"mamba": {}, "gla": {"num_heads": 2}}


@pytest.mark.parametrize("name", ["mamba", "gla"])
def test_output_depends_on_the_first_token_and_not_on_the_future(name):
    torch.manual_seed(0)
    blk = get_block_class(name)(32, **KW[name])
    x = torch.randn(2, 48, 32, requires_grad=True)
    y = blk(x)[0]
    (g,) = torch.autograd.grad(y[:, 47].sum(), x)
    assert g[:, 0].abs().max() > 1e-7, "y_47 does not depend on x_0"
    assert g[:, 1:47].abs().amax(-1).min() > 0, "y_47 ignores some earlier token"
    (g,) = torch.autograd.grad(blk(x)[0][:, 20].sum(), x)
    assert g[:, 21:].abs().max() == 0  # causal


def _pair_recall_accuracy(name: str, steps: int = 200, n_pairs: int = 3, n_keys: int = 6, n_vals: int = 6,
                          gap: int = 6) -> float:
    """One block layer: tokens ``key * n_vals + value`` (n_pairs distinct keys), ``gap`` filler tokens, then a
    query token for one key; the target is that key's value.

    The answer is only in tokens more than ``gap`` steps back (beyond Mamba's 4-tap convolution), so a layer
    without memory is at ~1/n_vals.
    """
    torch.manual_seed(0)
    d, vocab = 32, n_keys * n_vals + n_keys + 1
    filler = vocab - 1
    emb, blk, head = nn.Embedding(vocab, d), get_block_class(name)(d, **KW[name]), nn.Linear(d, n_vals)
    opt = torch.optim.Adam([*emb.parameters(), *blk.parameters(), *head.parameters()], lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch(b):
        keys = torch.rand(b, n_keys, generator=gen).argsort(1)[:, :n_pairs]
        vals = torch.randint(n_vals, (b, n_pairs), generator=gen)
        j = torch.randint(n_pairs, (b, 1), generator=gen)
        x = torch.cat([keys * n_vals + vals, torch.full((b, gap), filler), n_keys * n_vals + keys.gather(1, j)], 1)
        return x, vals.gather(1, j)[:, 0]

    for _ in range(steps):
        x, y = batch(64)
        loss = F.cross_entropy(head(blk(emb(x))[0][:, -1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(1024)
    with torch.no_grad():
        return (head(blk(emb(x))[0][:, -1]).argmax(-1) == y).float().mean().item()


@pytest.mark.parametrize("name", ["mamba", "gla"])
def test_one_layer_learns_associative_recall(name):
    torch.set_num_threads(1)
    assert _pair_recall_accuracy(name) > 0.8  # chance 1/6; 0.95 (mamba) and 1.0 (gla) at seed 0


@pytest.mark.parametrize("name", ["mamba", "gla"])
def test_recall_fails_without_memory(name, monkeypatch):
    """Negative control: the same training with the recurrence cut (every state reset) stays near chance."""
    torch.set_num_threads(1)
    scan1, gla = _ops.scan1, _ops.gla

    def scan1_memoryless(log_a, b, h0):
        return scan1(torch.full_like(log_a, -1e4), b, h0)

    def gla_memoryless(q, k, v, g, scale, h0):
        return gla(q, k, v, torch.full_like(g, -1e4), scale, h0)

    monkeypatch.setattr(_ops, "scan1", scan1_memoryless)
    monkeypatch.setattr(_ops, "gla", gla_memoryless)
    assert _pair_recall_accuracy(name) < 0.5  # 0.16 for both at seed 0
