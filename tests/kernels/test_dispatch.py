"""Backend choice: CPU takes PyTorch, the environment override works, a missing Triton falls back cleanly."""
from __future__ import annotations

import os
import sys
import types

import pytest
import torch

from seqlab.kernels import _dispatch, scan1, simple_gla
from seqlab.kernels._dispatch import ENV_VAR, choose_backend

fake_cuda = types.SimpleNamespace(device=torch.device("cuda", 0))


def test_cpu_tensors_take_torch(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert choose_backend(torch.zeros(1)) == "torch"


def test_cuda_tensors_take_triton_when_importable(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    assert choose_backend(None, fake_cuda) == "triton"


def test_missing_triton_falls_back(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    assert choose_backend(fake_cuda) == "torch"
    with pytest.raises(ValueError, match="not importable"):
        choose_backend(fake_cuda, backend="triton")


def test_triton_available_never_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton -> ImportError
    _dispatch.triton_available.cache_clear()
    try:
        assert _dispatch.triton_available() is False
    finally:
        _dispatch.triton_available.cache_clear()


def test_env_override(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "torch")
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    assert choose_backend(fake_cuda) == "torch"
    assert choose_backend(fake_cuda, backend="triton") == "triton"  # the argument wins over the env
    monkeypatch.setenv(ENV_VAR, "bogus")
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend(torch.zeros(1))


def test_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(_dispatch, "triton_available", lambda: True)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        choose_backend(torch.zeros(1), backend="triton")


def test_ops_run_with_triton_missing(monkeypatch):
    """With Triton unimportable and no override the ops take the PyTorch path and never import triton."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(_dispatch, "triton_available", lambda: False)
    for name in [m for m in sys.modules if m.startswith("seqlab.kernels") and ".triton_" in m]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "triton", None)
    h, _ = scan1(torch.rand(1, 4, 3), torch.randn(1, 4, 3))
    o, _ = simple_gla(torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8), torch.randn(1, 4, 2, 8), -torch.rand(1, 4, 2))
    assert torch.isfinite(h).all() and torch.isfinite(o).all()
    assert not any(".triton_" in m for m in sys.modules if m.startswith("seqlab.kernels"))


def test_getenv_follows_os_environ(monkeypatch):
    """The launch paths' fast ``getenv`` sees every way the environment changes, as ``os.environ.get`` does."""
    from seqlab.kernels._dispatch import getenv

    name = "SEQLAB_TEST_GETENV_FLAG"
    monkeypatch.delenv(name, raising=False)
    assert getenv(name) is None and getenv(name, "d") == "d"
    monkeypatch.setenv(name, "1")
    assert getenv(name) == "1" == os.environ.get(name)
    os.environ[name] = "x\u00e9"
    assert getenv(name) == "x\u00e9"
    del os.environ[name]
    assert getenv(name, "gone") == "gone"


def test_next_pow2_matches_triton():
    """The host-side ``next_pow2`` equals ``triton.next_power_of_2`` (which costs a ``ConstexprFunction`` call)."""
    triton = pytest.importorskip("triton")
    from seqlab.kernels._dispatch import next_pow2

    for n in list(range(0, 5000)) + [2**20 - 1, 2**20, 2**20 + 1, 2**31 - 1, 2**31, 2**31 + 1]:
        assert next_pow2(n) == triton.next_power_of_2(n), n
