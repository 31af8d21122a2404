"""Hand a top-level ``import kernels`` over to the package that owns that name.

DESIGN.md puts ``seqlab.kernels`` in a top-level ``kernels/`` folder (and the GPU benchmark in
``benchmarks/kernels.py``). When the repository root, or ``benchmarks/``, is on ``sys.path`` (``python -m ...`` or
``python benchmarks/x.py`` from a checkout), ``import kernels`` finds those files first. Since transformers 5.25,
``import transformers`` imports Hugging Face's ``kernels`` package (PyPI ``kernels``) when ``find_spec("kernels")``
succeeds, and then failed on our folder (ImportError ``CUDAProperties``; fourth session of 2026-12-03).

:func:`hand_over` runs instead of the module body when one of those files is imported under the bare name: it
loads the next ``kernels`` on ``sys.path`` outside this checkout into ``sys.modules`` (the import statement then
returns it), or raises ``ModuleNotFoundError`` as if the name did not exist.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def hand_over(name: str, file: str) -> None:
    """Replace ``sys.modules[name]`` with the first ``name`` found on ``sys.path`` away from ``file``'s folder."""
    own = os.path.dirname(os.path.abspath(file))
    if os.path.basename(file) == "__init__.py":
        own = os.path.dirname(own)  # a package: skip the folder that holds it
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != own]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None:
        raise ModuleNotFoundError(
            f"No module named {name!r} (found {file}, which is seqlab's own and not importable as {name!r}: "
            f"its folder {own} is on sys.path; import seqlab.kernels instead)", name=name)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
