"""Command-line flags from a frozen training dataclass, with YAML recipes underneath.

Precedence: dataclass defaults < ``--config FILE.yaml`` < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from tokenizer.config_types import checked_fields


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, helps: dict[str, str]) -> None:
    """One ``--flag`` per field of ``cls``; every field must have a help string in ``helps``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{helps[f.name]} (default: {default})"
        origin = typing.get_origin(kind)
        if origin in (typing.Union, types.UnionType):  # ``str | None``: the flag takes the str
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
            origin = typing.get_origin(kind)
        if origin is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(flag, dest=f.name, type=item, nargs="+", default=None, help=text)
        elif kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Build ``cls`` from ``args.config`` (YAML, optional) overridden by the explicit flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold key: value lines (the flags without --), got {type(loaded).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(names)}")
        values.update(loaded)
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    for f in dataclasses.fields(cls):
        if isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    try:
        values = checked_fields(cls, values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{args.config or 'command line'}: {e}") from e
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in values]
    if missing:
        raise ValueError(f"missing required settings: {', '.join('--' + m.replace('_', '-') for m in missing)}")
    return cls(**values)
