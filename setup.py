"""Maps the fixed top-level folders onto the ``seqlab`` namespace (see DESIGN.md, Layout).

``seqlab.core`` = core/, ``seqlab.kernels`` = kernels/, ... ; ``seqlab`` itself is a namespace package.
Every sub-folder holding an ``__init__.py`` is a sub-package; YAML under configs/ ships as package data.
"""
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
TOP = ("core", "kernels", "forecasting", "vision", "audio", "recsys", "graphs", "configs", "tests")

packages, package_dir = [], {}
for top in TOP:
    for init in sorted((ROOT / top).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        if "__pycache__" in rel.parts:
            continue
        name = "seqlab." + ".".join(rel.parts)
        packages.append(name)
        package_dir[name] = rel.as_posix()

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"seqlab.configs": ["**/*.yaml"], "seqlab.tests": ["**/*.yaml", "**/*.csv"]},
    include_package_data=False,
)
