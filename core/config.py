"""YAML configs: load, override, validate and instantiate (omegaconf, no Hydra).

A config has the top-level sections ``seed``, ``model``, ``data``, ``task`` and ``trainer``. Sections other
than ``seed`` and ``trainer`` are built by :func:`instantiate` from a ``_target_`` dotted path, which must
start with one of :data:`ALLOWED_PREFIXES`. ``trainer`` holds plain ``lightning.Trainer`` keyword arguments.

Example:
    >>> cfg = load_config("configs/forecasting/quickstart.yaml", ["trainer.max_epochs=2"])
    >>> model = instantiate(cfg.model)
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from seqlab.core.errors import ConfigError

SECTIONS = ("seed", "model", "data", "task", "trainer")
REQUIRED = ("model", "data", "task")
ALLOWED_PREFIXES = ("seqlab.", "torch.", "lightning.")
_SPECIAL = ("_target_", "_args_", "_partial_")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Read a YAML config, apply ``key=value`` dotlist overrides, and validate its sections.

    Overrides may only replace keys that exist (``+key=value`` adds a new one, as in Hydra).
    Interpolations (``${data.seq_len}``, ``${oc.env:VAR,default}``) are resolved at the end, so errors in
    them surface here.

    Raises:
        ConfigError: missing file, YAML syntax error, unknown section, bad override, bad interpolation.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = _yaml_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error in {path}{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping with sections {', '.join(SECTIONS)}")
    cfg = OmegaConf.create(raw)
    apply_overrides(cfg, overrides)
    validate(cfg, source=str(path))
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path}: cannot resolve interpolation: {_first_line(e)}") from None
    return cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Apply ``key=value`` overrides in place.

    A key must already exist unless written ``+key=value``; keys under ``trainer.`` may always be added
    (they are ``lightning.Trainer`` arguments, checked when the Trainer is built).
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        add = key.startswith("+")
        key = key.lstrip("+")
        add = add or key.startswith("trainer.")  # any lightning.Trainer argument; the Trainer validates it
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        if not add and OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False) is _MISSING:
            raise ConfigError(f"override of unknown key {key!r} (write +{key}=... to add a new key)")
        try:
            parsed = _yaml_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        try:
            OmegaConf.update(cfg, key, parsed, merge=False, force_add=add)
        except OmegaConfBaseException as e:
            raise ConfigError(f"cannot apply override {item!r}: {_first_line(e)}") from None


def validate(cfg: DictConfig, source: str = "config") -> None:
    """Check the top-level sections and that every ``_target_`` is allowed and importable."""
    unknown = [k for k in cfg.keys() if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"{source}: unknown top-level section {unknown[0]!r} (allowed: {', '.join(SECTIONS)})")
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{source}: missing section {missing[0]!r}")
    if "trainer" in cfg and cfg.trainer is not None and not isinstance(cfg.trainer, DictConfig):
        raise ConfigError(f"{source}: section 'trainer' must be a mapping of lightning.Trainer arguments")
    for key, target in _targets(cfg, prefix=""):
        check_target(target, where=f"{source}: {key}")


def check_target(target: Any, where: str = "_target_") -> None:
    """Refuse ``_target_`` values outside the allowlist; make sure the rest resolve."""
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{where}._target_ must be a dotted path string, got {target!r}")
    if not target.startswith(ALLOWED_PREFIXES):
        raise ConfigError(f"{where}._target_ {target!r} is not allowed (must start with "
                          f"{', '.join(ALLOWED_PREFIXES)})")
    locate(target, where=where)


def locate(path: str, where: str = "_target_") -> Any:
    """Import the object at dotted ``path``, walking attributes first and importing submodules as needed.

    A package attribute wins over a submodule of the same name (``seqlab.forecasting.models.tpgn`` is the
    builder function that ``models/__init__.py`` defines, not the ``tpgn.py`` module).
    """
    import types

    parts = path.split(".")
    obj: Any = None
    for i, attr in enumerate(parts):
        if obj is not None and hasattr(obj, attr):
            obj = getattr(obj, attr)
            continue
        if obj is not None and not isinstance(obj, types.ModuleType):
            raise ConfigError(f"{where}._target_ {path!r} does not exist ({'.'.join(parts[:i])} has no {attr!r})")
        module_name = ".".join(parts[: i + 1])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                owner = ".".join(parts[:i]) or module_name
                raise ConfigError(f"{where}._target_ {path!r} does not exist ({owner} has no {attr!r})") from None
            raise ConfigError(f"{where}._target_ {path!r}: importing {module_name} failed: {e}") from None
        except ImportError as e:
            raise ConfigError(f"{where}._target_ {path!r}: importing {module_name} failed: {e}") from None
    if isinstance(obj, types.ModuleType):
        raise ConfigError(f"{where}._target_ {path!r} is a module, not a class or function")
    return obj


def instantiate(node: Any, /, **kwargs: Any) -> Any:
    """Build objects from a config node recursively.

    A mapping with ``_target_`` becomes ``target(*_args_, **rest, **kwargs)``; nested nodes are built first.
    ``_partial_: true`` returns a ``functools.partial`` instead of calling. Other mappings and lists are
    returned as plain ``dict`` / ``list`` with their children built.

    Args:
        node: a DictConfig/ListConfig/dict/list/scalar.
        **kwargs: extra keyword arguments for the top-level target (e.g. ``model=`` for a task).
    """
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    return _build(node, kwargs, where="config")


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text."""
    return OmegaConf.to_yaml(cfg, resolve=True)


_MISSING = object()


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (PyYAML's YAML 1.1 resolver wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


def _build(node: Any, extra: dict, where: str) -> Any:
    if isinstance(node, Mapping):
        if "_target_" not in node:
            return {k: _build(v, {}, f"{where}.{k}") for k, v in node.items()}
        check_target(node["_target_"], where=where)
        fn = locate(node["_target_"], where=where)
        args = [_build(a, {}, f"{where}._args_") for a in node.get("_args_", [])]
        kw = {k: _build(v, {}, f"{where}.{k}") for k, v in node.items() if k not in _SPECIAL}
        kw.update(extra)
        if node.get("_partial_", False):
            import functools

            return functools.partial(fn, *args, **kw)
        try:
            return fn(*args, **kw)
        except TypeError as e:
            if "argument" in str(e):
                raise ConfigError(f"{where}: {node['_target_']}: {e}") from None
            raise
    if isinstance(node, list):
        return [_build(v, {}, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def _targets(node: Any, prefix: str):
    if isinstance(node, DictConfig):
        for k in node.keys():
            key = f"{prefix}.{k}" if prefix else str(k)
            if k == "_target_":
                yield prefix or "<root>", node._get_node(k)._value()
            else:
                child = node._get_node(k)
                if isinstance(child, (DictConfig, ListConfig)):
                    yield from _targets(child, key)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _targets(node._get_node(i), f"{prefix}[{i}]")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
