"""SequenceBackbone: patterns, state carrying, step, checkpointing, bad input."""
from __future__ import annotations

import pytest
import torch
from seqlab.core import SequenceBackbone
from seqlab.core.errors import ConfigError


def test_pattern_repeats_cyclically():
    bb = SequenceBackbone(16, ["gru", "gru", "attention"], n_layers=5, block_kwargs={"attention": {"num_heads": 2}})
    assert bb.pattern == ["gru", "gru", "attention", "gru", "gru"]
    assert bb.layers[2].mixer.num_heads == 2
    assert bb.causal


def test_causal_stack_step_and_halves_equal_full():
    torch.manual_seed(0)
    bb = SequenceBackbone(16, ["mamba", "attention", "lstm"], block_kwargs={"mamba": {"d_state": 4},
                                                                           "attention": {"num_heads": 2}})
    bb = bb.double().eval()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    with torch.no_grad():
        y, _ = bb(x)
        y1, s = bb(x[:, :5])
        y2, _ = bb(x[:, 5:], s)
        assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-10)
        st, ys = bb.init_state(2, dtype=torch.float64), []
        for t in range(12):
            yt, st = bb.step(x[:, t], st)
            ys.append(yt)
    assert torch.allclose(torch.stack(ys, 1), y, atol=1e-10)


def test_noncausal_stack_has_no_step():
    bb = SequenceBackbone(16, ["gru", "bidirectional"], mlp="gelu", norm="layer")
    assert not bb.causal
    y, _ = bb(torch.randn(2, 7, 16))
    assert y.shape == (2, 7, 16)
    with pytest.raises(ValueError, match="causal"):
        bb.step(torch.randn(2, 16), None)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = SequenceBackbone(16, ["gru", "attention"], dropout=0.0, block_kwargs={"attention": {"num_heads": 2}})
    b = SequenceBackbone(16, ["gru", "attention"], dropout=0.0, gradient_checkpointing=True,
                         block_kwargs={"attention": {"num_heads": 2}})
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 9, 16)
    for m in (a, b):
        m.train()
        m(x)[0].square().mean().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), n


def test_no_mlp_and_bad_arguments():
    bb = SequenceBackbone(8, "pgn", n_layers=2, mlp=None, block_kwargs={"pgn": {"window": 4}})
    assert bb.layers[0].mlp is None
    with pytest.raises(ValueError, match="mlp"):
        SequenceBackbone(8, "gru", mlp="relu")
    with pytest.raises(ValueError, match="norm"):
        SequenceBackbone(8, "gru", norm="batch")
    with pytest.raises(ValueError, match="block_kwargs"):
        SequenceBackbone(8, "gru", block_kwargs={"lstm": {}})
    with pytest.raises(ValueError, match="n_layers"):
        SequenceBackbone(8, "gru", n_layers=0)
    with pytest.raises(ConfigError, match="unknown block"):
        SequenceBackbone(8, "nope")
    with pytest.raises(ValueError, match=r"SequenceBackbone.*\[B, T, D=8\]"):
        bb(torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match="state list"):
        bb(torch.randn(2, 3, 8), [None])


def test_import_seqlab_core_is_light():
    import subprocess
    import sys

    code = ("import sys, seqlab.core; seqlab.core.create_block('gru', 8); "
            "bad = [m for m in ('lightning', 'triton', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
