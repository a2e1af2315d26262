"""Quiet by default: library loads print nothing unless asked, and warnings name the caller's line.

``HART_VERBOSE=1`` in the environment (or ``verbose=True`` where a loader takes it) lets the
libraries underneath (transformers) print their own progress bars and notices.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

_PACKAGE_DIRS = tuple(str(Path(__file__).resolve().parents[1] / name) + os.sep for name in ("hart", "tokenizer"))


def is_verbose(verbose: bool | None = None) -> bool:
    """``verbose`` when given, else whether ``HART_VERBOSE`` is set to 1/true/yes."""
    if verbose is not None:
        return bool(verbose)
    return os.environ.get("HART_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def quiet_transformers(verbose: bool | None = None) -> Iterator[None]:
    """Silence transformers' progress bars and info/warning logs inside the block (unless verbose)."""
    if is_verbose(verbose):
        yield
        return
    from transformers.utils import logging

    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _outside_caller_level() -> int:
    """The ``stacklevel`` of the first frame (counted from this function's caller) outside this
    package and outside torch, so a warning points at the user's line, not at nn.Module plumbing."""
    frame, level = sys._getframe(2), 1
    while frame is not None:
        name = frame.f_code.co_filename
        inside = name.startswith(_PACKAGE_DIRS) or f"{os.sep}torch{os.sep}" in name
        if not inside:
            return level
        frame, level = frame.f_back, level + 1
    return level


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the user's code that called into the package."""
    warnings.warn(message, category, stacklevel=_outside_caller_level() + 1)
