"""Strict type checks of configuration values read from files (config.json, pipeline.json, YAML).

A value of the wrong type is an error that names the file and the key, never a silent coercion:
``ch: 32.0`` is not an int, ``patch_skip: "no"`` is not a bool, ``top_k: 50.5`` is not an int, and a
float must be finite. Integers are accepted where a float is expected (JSON writes 1.0 as 1 in
some tools); tuples are read from JSON/YAML lists. Annotations understood: int, float, bool, str,
``X | None``, ``tuple[X, ...]`` and ``tuple[X, Y]``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


def _check(value: Any, kind: Any, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(a for a in options if a is not type(None))
        origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{key} must be a list, got {value!r}")
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise TypeError(f"{key} must have {len(args)} items, got {len(value)}")
        return tuple(_check(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{key} must be finite, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(f"{key} must be a string, got {value!r}")
        return value
    return value  # other annotations (nested dataclasses, Any) are left to the class


def checked_fields(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every value checked against ``cls``'s field annotation (unknown keys pass through)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: _check(v, hints[k], k) if k in names else v for k, v in raw.items()}
