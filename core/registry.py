"""Registries of sequence blocks and of domain models (timm style).

Blocks: ``register_block`` decorates a class or builder ``f(d_model, **kw) -> SequenceMixer``;
``create_block(name, d_model, **kw)`` builds one; ``list_blocks()`` lists names.
Models: domains register builders with ``register_model("forecasting.tpgn")``; ``list_models()`` lists them.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from seqlab.core.errors import ConfigError

_BLOCKS: dict[str, Callable[..., Any]] = {}
_MODELS: dict[str, Callable[..., Any]] = {}


def _register(table: dict, kind: str, name: str):
    def deco(fn):
        if name in table and table[name] is not fn:
            raise ValueError(f"{kind} {name!r} is already registered by {table[name]!r}")
        table[name] = fn
        return fn

    return deco


def register_block(name: str):
    """Decorator registering a block class or builder under ``name``."""
    return _register(_BLOCKS, "block", name)


def register_model(name: str):
    """Decorator registering a domain model builder under ``name`` (e.g. ``"forecasting.tpgn"``)."""
    return _register(_MODELS, "model", name)


def _ensure_blocks_loaded() -> None:
    import seqlab.core.blocks  # noqa: F401  (registers the built-in blocks)


def create_block(name: str, d_model: int, **kwargs: Any):
    """Build the registered block ``name`` of width ``d_model``.

    Raises:
        ConfigError: if no block of that name is registered.
    """
    _ensure_blocks_loaded()
    if name not in _BLOCKS:
        raise ConfigError(f"unknown block {name!r}; registered blocks: {', '.join(sorted(_BLOCKS))}")
    return _BLOCKS[name](d_model=d_model, **kwargs)


def list_blocks(pattern: str = "*") -> list[str]:
    """Sorted names of registered blocks matching a glob ``pattern``."""
    _ensure_blocks_loaded()
    return sorted(n for n in _BLOCKS if fnmatch.fnmatch(n, pattern))


def get_block_class(name: str):
    """The class or builder registered as ``name``."""
    _ensure_blocks_loaded()
    if name not in _BLOCKS:
        raise ConfigError(f"unknown block {name!r}")
    return _BLOCKS[name]


def create_model(name: str, **kwargs: Any):
    """Build the registered domain model ``name``."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered domain models (only those of domains imported so far)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))
