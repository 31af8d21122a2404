"""Hand a top-level ``import kernels`` over to the package that owns that name.

DESIGN.md puts ``seqlab.kernels`` in a top-level ``kernels/`` folder (and the GPU benchmark in
``benchmarks/kernels.py``). When the repository root, or ``benchmarks/``, is on ``sys.path`` (``python -m ...`` or
``python benchmarks/x.py`` from a checkout, or pytest), ``import kernels`` finds those files first. transformers
imports a ``kernels`` module whenever ``find_spec("kernels")`` succeeds (5.24 to read its version; 5.25, which
depends on Hugging Face's ``kernels`` package, to use it), and 5.25 then failed on our folder (ImportError
``CUDAProperties``; fourth session of 2026-12-03).

:func:`hand_over` runs instead of the module body when one of those files is imported under the bare name:
``sys.modules[name]`` becomes the first ``kernels`` on ``sys.path`` that lives outside this checkout (the import
statement returns it), or, when there is none, ``seqlab.kernels`` itself (what the bare import gave before).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

# Real paths: the package may be reached through symlinks (``benchmarks/device_env.sh`` links this checkout's
# folders under /tmp/sl/seqlab), and a symlinked path must still count as ours.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_OUR_PACKAGE = os.path.join(_CHECKOUT, "kernels")
_OUR_SCRIPT = os.path.join(_CHECKOUT, "benchmarks", "kernels.py")


def _inside_checkout(origin: str | None) -> bool:
    """Whether ``origin`` is one of our two ``kernels`` (the top-level package or ``benchmarks/kernels.py``). Only
    those count: a virtualenv inside the checkout (``make``'s ``.venv``) holds the foreign package we must reach."""
    if not origin:
        return False
    origin = os.path.realpath(origin)
    return origin == _OUR_SCRIPT or os.path.commonpath([origin, _OUR_PACKAGE]) == _OUR_PACKAGE


def foreign_spec(name: str):
    """The spec of the first ``name`` on ``sys.path`` that is not a file of this checkout, or None."""
    for entry in sys.path:
        spec = importlib.machinery.PathFinder.find_spec(name, [entry or os.curdir])
        if spec is None:
            continue
        places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])  # namespace pkgs
        if not any(_inside_checkout(p) for p in places):
            return spec
    return None


def hand_over(name: str) -> None:
    """Replace ``sys.modules[name]`` (the module being imported) with the foreign ``name`` or with
    ``seqlab.kernels``."""
    spec = foreign_spec(name)
    here = getattr(sys.modules.get(name), "__file__", None)
    if spec is not None and here and spec.origin and os.path.realpath(spec.origin) == os.path.realpath(here):
        spec = None  # never hand a module over to itself (that recursed)
    if spec is None:
        sys.modules[name] = importlib.import_module("seqlab.kernels")
        return
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
