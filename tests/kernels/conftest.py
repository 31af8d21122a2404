"""Kernel test setup: Triton runs in interpreter mode on CPU; fresh allocations are poisoned with NaN.

Every buffer a kernel forgets to write then shows up as NaN in the comparison against the oracle.
"""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton

import pytest  # noqa: E402
import torch  # noqa: E402


def _poisoned(fn):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        if out.is_floating_point():
            out.fill_(float("nan"))
        return out

    return wrapper


@pytest.fixture(autouse=True)
def poison_empty(monkeypatch):
    """``torch.empty``, ``torch.empty_like`` and ``Tensor.new_empty`` return NaN-filled float tensors."""
    monkeypatch.setattr(torch, "empty", _poisoned(torch.empty))
    monkeypatch.setattr(torch, "empty_like", _poisoned(torch.empty_like))
    monkeypatch.setattr(torch.Tensor, "new_empty", _poisoned(torch.Tensor.new_empty))
    yield


def rel_rmse(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative RMS error ``||x - ref|| / ||ref||`` in float64 (NaN propagates)."""
    x, ref = x.double(), ref.double()
    return ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-12)).item()


@pytest.fixture
def check_close():
    """``check_close(name, x, ref, tol)`` asserts shape equality and relative RMS error below ``tol``."""

    def check(name: str, x: torch.Tensor, ref: torch.Tensor, tol: float) -> None:
        assert x.shape == ref.shape, f"{name}: shape {tuple(x.shape)} != {tuple(ref.shape)}"
        err = rel_rmse(x, ref)
        assert err < tol, f"{name}: relative RMS error {err:.3e} >= {tol:.1e}"

    return check
