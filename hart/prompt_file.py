"""Prompt files of ``hart generate --prompts``: ``.txt`` (one prompt a line) or ``.jsonl``.

Line numbers count every line as written, from 1, blank lines included (blank lines are skipped,
not renumbered), so ``000042.png`` is the prompt an editor shows on line 42. A ``.jsonl`` line is
an object ``{"prompt": str, "seed": int (optional)}``; other keys are allowed and ignored. Any bad
line is an error that names the file and the line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".txt", ".jsonl")


class PromptFileError(ValueError):
    """A prompt file that cannot be read as prompts: the message names the file and line."""


@dataclass(frozen=True)
class PromptLine:
    line: int  # 1-based line number in the file
    prompt: str
    seed: int | None = None  # the line's own seed (.jsonl "seed"); None: derived from --seed


def read_prompts(path: str | os.PathLike) -> list[PromptLine]:
    """The prompts of a ``.txt`` or ``.jsonl`` file, in file order."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise PromptFileError(f"{path}: prompt files must end in {' or '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} not found")
    parse = parse_jsonl_line if path.suffix == ".jsonl" else PromptLine
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            lines.append(parse(number, text.strip()))
        except ValueError as e:
            raise PromptFileError(f"{path}:{number}: {e}") from None
    if not lines:
        raise PromptFileError(f"{path}: no prompts (every line is blank)")
    return lines


def parse_jsonl_line(number: int, text: str) -> PromptLine:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f'expected an object {{"prompt": ...}}, got {type(obj).__name__}')
    prompt, seed = obj.get("prompt"), obj.get("seed")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError('"prompt" must be a non-empty string')
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f'"seed" must be a non-negative integer, got {seed!r}')
    return PromptLine(number, prompt, seed)
