"""The ``seqlab`` command line.

    seqlab fit CONFIG [key=value ...] [--run-dir DIR] [--debug]
    seqlab test [CONFIG] --ckpt PATH [key=value ...]
    seqlab predict [CONFIG] --ckpt PATH [key=value ...]
    seqlab check CONFIG [key=value ...]
    seqlab list

CONFIG is a YAML path, or a name of a config shipped with the package (``forecasting/quickstart``).
For ``test``/``predict`` the config defaults to the ``config.yaml`` saved beside the checkpoint's run.
Bad input ends with one line ``error: ...`` and exit code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from seqlab.core.errors import ConfigError, SeqlabError

EXIT_BAD_INPUT = 2
COMMANDS = ("fit", "test", "predict", "check", "list")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqlab`` console script; returns the process exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [x for x in extra if x.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.items = list(getattr(args, "items", [])) + extra
    try:
        return _dispatch(args)
    except SeqlabError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqlab", description="Train, test and serve seqlab models from YAML configs.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        sp = sub.add_parser(name)
        if name != "list":
            sp.add_argument("items", nargs="*", metavar="CONFIG [key=value ...]",
                            help="config path or packaged name, then omegaconf dotlist overrides")
        if name in ("test", "predict"):
            sp.add_argument("--ckpt", required=True, help="Lightning checkpoint to restore")
        sp.add_argument("--run-dir", default=os.environ.get("SEQLAB_RUNS", "runs"),
                        help="root folder of run directories (default: ./runs)")
        sp.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list()
    from seqlab.core.config import load_config

    config, overrides = _split_items(args.items)
    if config is None:
        if args.command in ("test", "predict"):
            config = _config_beside(Path(args.ckpt))
        else:
            raise ConfigError(f"seqlab {args.command} needs a CONFIG path")
    path = resolve_config_path(config)
    cfg = load_config(path, overrides)
    name = _run_name(path)

    from seqlab.core import runtime  # lightning loads only here

    if args.command == "check":
        comps = runtime.check(cfg)
        n = sum(p.numel() for p in comps.model.parameters()) if hasattr(comps.model, "parameters") else 0
        print(f"ok: {path} ({type(comps.model).__name__}, {n:,} parameters; {type(comps.data).__name__}; "
              f"{type(comps.task).__name__})")
        return 0
    if args.command == "fit":
        result = runtime.fit(cfg, name, args.run_dir)
    elif args.command == "test":
        result = runtime.test(cfg, name, args.ckpt, args.run_dir)
    else:
        result = runtime.predict(cfg, name, args.ckpt, args.run_dir)
    if _is_rank_zero():
        _report(result)
    return 0


def _split_items(items: list[str]) -> tuple[str | None, list[str]]:
    if not items:
        return None, []
    first = items[0]
    if "=" in first and not first.endswith((".yaml", ".yml")):
        return None, list(items)
    return first, list(items[1:])


def resolve_config_path(config: str) -> Path:
    """A config path as given, or a packaged config name (``forecasting/quickstart``)."""
    path = Path(config)
    if path.is_file():
        return path
    from importlib import resources

    rel = config if config.endswith((".yaml", ".yml")) else config + ".yaml"
    rel = rel.removeprefix("configs/")
    try:
        packaged = resources.files("seqlab.configs").joinpath(rel)
        if packaged.is_file():
            return Path(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    raise ConfigError(f"config file not found: {config}")


def _config_beside(ckpt: Path) -> str:
    for parent in list(ckpt.parents)[:3]:
        candidate = parent / "config.yaml"
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(f"no CONFIG given and no config.yaml found beside checkpoint {ckpt}")


def _run_name(path: Path) -> str:
    if path.name == "config.yaml" and (path.parent / "status.json").is_file():
        return path.parent.parent.name  # a saved run's config: keep the original config's name
    return path.stem


def _report(result) -> None:
    if result.metrics:
        width = max(len(k) for k in result.metrics)
        print("\nmetrics:")
        for k in sorted(result.metrics):
            print(f"  {k:<{width}}  {result.metrics[k]:.6g}")
    print(f"\nrun directory: {result.run_dir}")
    if result.best_checkpoint:
        print(f"checkpoint:    {result.best_checkpoint}")
    for a in result.artifacts:
        print(f"artifact:      {a}")


def _list() -> int:
    from importlib.metadata import entry_points

    from seqlab.core.registry import list_blocks, list_models

    for ep in entry_points(group="seqlab.domains"):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001  (a broken optional domain must not hide the others)
            print(f"warning: domain {ep.name} failed to import: {e}", file=sys.stderr)
    print("blocks:")
    for b in list_blocks():
        print(f"  {b}")
    print("models:")
    for m in list_models():
        print(f"  {m}")
    return 0


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


if __name__ == "__main__":
    sys.exit(main())
