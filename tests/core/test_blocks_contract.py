"""The SequenceMixer contract, generated from the block registry (``list_blocks()``).

Every registered block is tested with its defaults at a tiny width, plus the variants in ``VARIANTS``.
"""
from __future__ import annotations

import pytest
import torch
from seqlab.core import create_block, list_blocks

D = 16
T = 24
B = 3

# Small sizes so the whole file runs in seconds; keys are block names.
TINY: dict[str, dict] = {
    "attention": {"num_heads": 2},
    "mamba": {"d_state": 4},
    "mamba2": {"d_state": 8, "headdim": 8},
    "retnet": {"num_heads": 2},
    "gla": {"num_heads": 2},
    "deltanet": {"num_heads": 2},
    "aaren": {"num_heads": 2},
    "pgn": {"window": 8},
    "fsmn": {"lorder": 3, "conv_kernel": 5},
    "bidirectional": {"block": "gru"},
}
# Extra configurations worth the contract on top of the defaults.
VARIANTS: list[tuple[str, dict]] = [
    ("attention", {"causal": False}),
    ("fsmn", {"causal": True}),
    ("bidirectional", {"block": "lstm", "merge": "concat"}),
    ("deltanet", {"allow_neg_eigval": True}),
    ("deltanet", {"use_gate": True}),
    ("bidirectional", {"block": "mamba", "block_kwargs": {"d_state": 4}}),
]


def _cases() -> list[tuple[str, dict]]:
    names = list_blocks()
    cases = [(n, dict(TINY.get(n, {}))) for n in names]
    for n, kw in VARIANTS:
        if n in names:
            base = dict(TINY.get(n, {}))
            base.update(kw)
            inner = kw.get("block")
            if n == "bidirectional" and inner not in names:
                continue
            cases.append((n, base))
    return cases


CASES = _cases()
IDS = [n + ("" if not kw else "-" + "-".join(f"{k}={v}" for k, v in kw.items() if not isinstance(v, dict)))
       for n, kw in CASES]


def _make(name: str, kw: dict, dtype=torch.float64, seed: int = 0):
    torch.manual_seed(seed)
    block = create_block(name, D, **kw).to(dtype).eval()
    return block


def _tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


def _x(dtype=torch.float64, t: int = T, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, t, D, generator=g, dtype=dtype)


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    err = (a - b).abs().max().item()
    scale = b.abs().max().item() + 1e-12
    assert err <= 1e-10 * max(scale, 1.0), f"{what}: max abs error {err:.3e} (scale {scale:.3e})"


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_shapes_and_attributes(name, kw):
    block = _make(name, kw, torch.float32)
    assert block.d_model == D and isinstance(block.causal, bool)
    x = _x(torch.float32)
    y, state = block(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    if not block.causal:
        assert state is None
    if block.causal:
        assert hasattr(block, "step")


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_bad_input_raises_value_error_naming_block(name, kw):
    block = _make(name, kw, torch.float32)
    with pytest.raises(ValueError, match=rf"{name}.*\[B, T, D={D}\]"):
        block(torch.randn(B, D))
    with pytest.raises(ValueError, match=rf"{name}.*\[B, T, D={D}\]"):
        block(torch.randn(B, T, D + 1))
    if block.causal:
        with pytest.raises(ValueError, match=rf"{name}.*\[B, D={D}\]"):
            block.step(torch.randn(B, 1, D), block.init_state(B, dtype=torch.float32))


@pytest.mark.parametrize("name,kw", [c for c in CASES], ids=IDS)
def test_causal_step_and_halves_equal_full(name, kw):
    block = _make(name, kw)
    if not block.causal:
        pytest.skip("non-causal block")
    x = _x()
    with torch.no_grad():
        y, _ = block(x)
        # step by step from the zero state
        state = block.init_state(B, dtype=torch.float64)
        ys = []
        for t in range(T):
            y_t, state = block.step(x[:, t], state)
            ys.append(y_t)
        _close(torch.stack(ys, 1), y, f"{name}: step-by-step vs full")
        # two halves with the state carried (odd split)
        cut = T // 2 + 1
        y1, s1 = block(x[:, :cut], block.init_state(B, dtype=torch.float64))
        y2, _ = block(x[:, cut:], s1)
        _close(torch.cat([y1, y2], 1), y, f"{name}: halves vs full")
        # the future does not leak into the past
        x2 = x.clone()
        x2[:, cut:] += 1.0
        y3, _ = block(x2)
        _close(y3[:, :cut], y[:, :cut], f"{name}: causality")


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_noncausal_batch_permutation_equivariance(name, kw):
    block = _make(name, kw)
    if block.causal:
        pytest.skip("causal block")
    x = _x()
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        y, _ = block(x)
        yp, _ = block(x[perm])
    _close(yp, y[perm], f"{name}: batch permutation")
    # and non-causal really means it: the last input moves the first output
    x2 = x.clone()
    x2[:, -1] += 1.0
    with torch.no_grad():
        y2, _ = block(x2)
    assert (y2[:, 0] - y[:, 0]).abs().max() > 1e-12, f"{name}: first output ignores the last input"


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_finite_gradients_for_every_parameter(name, kw):
    block = _make(name, kw, torch.float32).train()
    x = _x(torch.float32).requires_grad_(True)
    y, _ = block(x)
    (y.pow(2).mean() + y.mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}: parameter {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: parameter {pname} has a non-finite gradient"


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_deterministic_under_seed(name, kw):
    x = _x(torch.float32)
    y1, _ = _make(name, kw, torch.float32, seed=123)(x)
    y2, _ = _make(name, kw, torch.float32, seed=123)(x)
    y3, _ = _make(name, kw, torch.float32, seed=124)(x)
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_state_size_does_not_grow_with_t(name, kw):
    block = _make(name, kw)
    if not block.causal:
        pytest.skip("non-causal block")
    with torch.no_grad():
        sizes = []
        for t in (4, 4 * T):
            _, s = block(_x(t=t))
            sizes.append(sum(z.numel() for z in _tensors(s)))
    if getattr(block, "constant_state", True):
        assert sizes[0] == sizes[1] > 0
    else:  # a KV cache: documented to grow
        assert sizes[1] > sizes[0]


def test_registry_lists_the_issue_blocks():
    expected = {"attention", "bidirectional", "fsmn", "gru", "lstm", "pgn"}
    assert expected <= set(list_blocks())


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_float32_dispatch_path_halves_equal_full(name, kw):
    """float32 goes through the public kernel ops (dispatch) with their initial/final states."""
    block = _make(name, kw, torch.float32)
    if not block.causal:
        pytest.skip("non-causal block")
    x = _x(torch.float32)
    with torch.no_grad():
        y, _ = block(x)
        cut = T // 2 - 1
        y1, s1 = block(x[:, :cut])
        y2, _ = block(x[:, cut:], s1)
        y_last, _ = block.step(x[:, cut], s1)
    assert torch.allclose(torch.cat([y1, y2], 1), y, atol=1e-4, rtol=1e-4)
    assert torch.allclose(y_last, y[:, cut], atol=1e-4, rtol=1e-4)
