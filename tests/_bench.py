"""Load a script of ``benchmarks/`` (not a package) as a module, for the tests of that script."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(script: str, name: str) -> ModuleType:
    """A fresh module from ``benchmarks/<script>.py`` registered as ``sys.modules[name]`` (dataclasses and
    pickling look their module up by name)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
