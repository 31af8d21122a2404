"""Backend choice for every kernel op.

Order: explicit ``backend=`` argument > ``SEQLAB_KERNEL_BACKEND`` environment variable > Triton when the
inputs live on a CUDA device and Triton imports > the PyTorch reference (chunked form).
Backends: ``"triton"`` and ``"torch"``. Triton on CPU tensors is allowed only under ``TRITON_INTERPRET=1``
(how the CI runs the kernels without a GPU).
"""
from __future__ import annotations

import functools
import os
import sys

import torch

BACKENDS = ("triton", "torch")
ENV_VAR = "SEQLAB_KERNEL_BACKEND"


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` succeeds (never raises)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


_ENV_DATA = getattr(os.environ, "_data", None)
_FAST_ENV = os.name == "posix" and isinstance(_ENV_DATA, dict)
_FS_ENCODING = sys.getfilesystemencoding()


def getenv(name: str, default: str | None = None) -> str | None:
    """``os.environ.get(name, default)`` without the mapping's Python layers (POSIX CPython: one dict lookup on
    ``os.environ._data``, which ``os.environ[...] = ...``, ``del`` and ``monkeypatch.setenv`` all update). The kernel
    launch paths read about ten flags a call; through ``os.environ.get`` that cost ~1.5 us each on this 2-core
    machine. Falls back to ``os.environ.get`` elsewhere."""
    if _FAST_ENV:
        v = _ENV_DATA.get(name.encode(_FS_ENCODING, "surrogateescape"))
        return default if v is None else v.decode(_FS_ENCODING, "surrogateescape")
    return os.environ.get(name, default)


def cdiv(x: int, y: int) -> int:
    """``ceil(x / y)`` for host-side ints. ``triton.cdiv`` is a ``triton.jit`` function: called on the host it goes
    through ``JITFunction.__call__`` (~3 us a call here), and a launch path computes several."""
    return -(-x // y)


def next_pow2(n: int) -> int:
    """The smallest power of two ``>= n`` (0 for 0, as ``triton.next_power_of_2``), for host-side ints:
    ``triton.next_power_of_2`` is a ``ConstexprFunction``, whose ``__call__`` unwraps constexprs on every call
    (~3 us here)."""
    return 0 if n <= 0 else 1 << (int(n) - 1).bit_length()


def interpret_mode() -> bool:
    """True under ``TRITON_INTERPRET=1`` (Triton kernels run on the CPU through numpy)."""
    return getenv("TRITON_INTERPRET", "0") == "1"


def choose_backend(*tensors: torch.Tensor | None, backend: str | None = None) -> str:
    """Pick ``"triton"`` or ``"torch"`` for an op whose inputs are ``tensors``.

    Args:
        *tensors: the op's tensor inputs (None entries are skipped); the first decides the device.
        backend: explicit choice; overrides the environment.

    Raises:
        ValueError: on an unknown backend name, or Triton asked for where it cannot run.
    """
    choice = backend if backend is not None else getenv(ENV_VAR) or None
    device = next((t.device for t in tensors if t is not None), torch.device("cpu"))
    if choice is None:
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if choice not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {choice!r}")
    if choice == "triton":
        if not triton_available():
            raise ValueError("backend='triton' was asked for but triton is not importable")
        if device.type != "cuda" and not interpret_mode():
            raise ValueError(f"backend='triton' needs CUDA tensors (got {device}) or TRITON_INTERPRET=1")
    return choice
