"""Eager twins of the kernel ops' ``torch.library`` custom ops.

Every op is registered as a custom op (with a fake implementation and ``register_autograd``), which is what lets
``torch.compile(fullgraph=True)`` trace it. In eager mode the custom-op call path is slow on the host: on the lent
H200 machine (``benchmarks/host_profile.py``, docs/results.md) one ``scan1`` forward+backward spent 690-800 us of
Python per call, 260 us of it inside ``torch._library.custom_ops``' ``backend_impl`` per op call, against 170-210
us for accelerated-scan's ``autograd.Function``; the GPU work takes 0.43 ms, so eager calls were host-bound.

:class:`EagerTwin` calls the same implementation directly when not compiling: through an ``autograd.Function``
built from the op's own ``setup_context`` and ``backward`` when a gradient is needed, or plainly otherwise.
Whenever anything traces (Dynamo, ``torch.compiler.is_compiling()``; AOTAutograd tracing the registered
backward, which runs with a dispatch mode active and on fake or functional tensor subclasses) it calls the custom
op, so traced graphs keep it. The backward functions call their backward ops through :func:`call`, which makes
the same choice.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

_IMPLS: dict = {}
_NAMES: dict = {}
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _tracing(args: tuple) -> bool:
    """True under Dynamo, under a Python dispatch mode (make_fx / fake tensors), or when a tensor argument is a
    subclass (FakeTensor, FunctionalTensor): then the custom op must be called, not its implementation."""
    if torch.compiler.is_compiling():
        return True
    if torch.utils._python_dispatch._get_current_dispatch_mode() is not None:
        return True
    return any(isinstance(a, torch.Tensor) and type(a) not in _PLAIN for a in args)


def custom_op(name: str, impl: Callable) -> Any:
    """``torch.library.custom_op(name, mutates_args=())`` of ``impl``, remembering ``impl`` for :func:`call`."""
    op = torch.library.custom_op(name, mutates_args=())(impl)
    _IMPLS[op] = impl
    _NAMES[op] = name
    return op


def _run(op: Any, args: tuple) -> Any:
    """``op``'s implementation on ``args``, under a profiler range named after the op while a profiler runs (so
    profiles still show ``seqlab::<op>``)."""
    if torch.autograd.profiler._is_profiler_enabled:
        with torch.profiler.record_function(_NAMES[op]):
            return _IMPLS[op](*args)
    return _IMPLS[op](*args)


def call(op: Any, *args: Any) -> Any:
    """Run custom op ``op`` (made by :func:`custom_op`): the op itself while tracing (:func:`_tracing`), else its
    Python implementation directly (no dispatcher round trip)."""
    if _tracing(args):
        return op(*args)
    return _run(op, args)


class _Twin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, twin: "EagerTwin", *args: Any) -> Any:
        out = _run(twin._key, args)
        ctx.twin = twin
        twin.setup_context(ctx, args, out)
        return out

    @staticmethod
    def backward(ctx, *grads: Any) -> Any:
        return (None, *ctx.twin.backward(ctx, *grads))


class EagerTwin:
    """Callable with the signature of custom op ``op``; see the module docstring.

    Args:
        op: the custom op, made by :func:`custom_op`.
        setup_context: the ``setup_context`` given to ``op.register_autograd``.
        backward: the ``backward`` given to ``op.register_autograd``.
    """

    def __init__(self, op: Any, setup_context: Callable, backward: Callable):
        self.op = op
        self._key = op  # implementation and profiler name (kept if ``op`` is swapped, as tests do)
        self.setup_context, self.backward = setup_context, backward
        op.register_autograd(backward, setup_context=setup_context)

    def __call__(self, *args: Any) -> Any:
        if _tracing(args):
            return self.op(*args)
        if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return _Twin.apply(self, *args)
        return _run(self._key, args)
