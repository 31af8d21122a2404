"""Import layering (DESIGN.md): kernels <- core <- domains, parsed with ast, nothing imported."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("forecasting", "vision", "audio", "recsys", "graphs")
LEVEL = {"kernels": 0, "core": 1, **{d: 2 for d in DOMAINS}}


def _imports(tree, top_level_only):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations(root: Path = ROOT) -> list[str]:
    bad = []
    for pkg in LEVEL:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            lightning_ok = pkg not in ("kernels", "core") or rel.startswith(("core/cli", "core/runtime/"))
            for line, mod in _imports(tree, top_level_only=False):
                parts = mod.split(".")
                if parts[0] in LEVEL:
                    bad.append(f"{rel}:{line}: bare import {mod!r}; use seqlab.{mod}")
                if parts[0] == "seqlab" and len(parts) > 1 and parts[1] in LEVEL and parts[1] != pkg:
                    target = parts[1]
                    if LEVEL[target] > LEVEL[pkg] or (LEVEL[pkg] == 2 and LEVEL[target] == 2):
                        bad.append(f"{rel}:{line}: {pkg} must not import seqlab.{target}")
                if parts[0] in ("lightning", "pytorch_lightning") and not lightning_ok:
                    bad.append(f"{rel}:{line}: {pkg} must not import {parts[0]}")
            triton_file = pkg == "kernels" and path.name.startswith("triton")
            for line, mod in _imports(tree, top_level_only=True):
                if mod.split(".")[0] == "triton" and not triton_file:
                    bad.append(f"{rel}:{line}: module-level import of triton")
    return bad


def test_layering_rules_hold():
    assert violations() == []


def test_checker_catches_violations(tmp_path):
    for pkg in LEVEL:
        (tmp_path / pkg).mkdir()
    (tmp_path / "kernels" / "a.py").write_text("import seqlab.core\nimport triton\n")
    (tmp_path / "core" / "b.py").write_text("import lightning\nfrom seqlab.recsys import x\n")
    (tmp_path / "recsys" / "c.py").write_text("from seqlab.forecasting import y\nimport core\n")
    found = "\n".join(violations(tmp_path))
    for needle in ("kernels must not import seqlab.core", "module-level import of triton",
                   "core must not import lightning", "core must not import seqlab.recsys",
                   "recsys must not import seqlab.forecasting", "bare import 'core'"):
        assert needle in found


@pytest.mark.parametrize("module", ["seqlab.core", "seqlab.kernels"])
def test_core_import_is_light(module):
    code = (f"import sys, {module}; heavy = [m for m in ('lightning', 'triton', 'pytorch_lightning') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
