"""Self-describing component checkpoints: ``config.json`` + ``model.safetensors`` (docs/design.md section 9).

Writes are atomic (temporary file, then rename) so an interrupted save never destroys what was on
disk. Loading builds the module on the meta device and assigns the stored tensors strictly, so a
missing, corrupt or mismatched file is a clear error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tokenizer.config_types import checked_fields

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, corrupt or does not match its configuration."""


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def save_component(directory: str | os.PathLike, config: Any, module: nn.Module) -> Path:
    """Save ``config`` (a dataclass) and ``module``'s weights into ``directory``."""
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp))
    save_json(directory / CONFIG_NAME, dataclasses.asdict(config))
    return directory


def load_config(directory: str | os.PathLike, config_cls: type[T], name: str = CONFIG_NAME) -> T:
    """Read ``name`` (``config.json``) of ``directory`` into ``config_cls``; unknown keys are an error."""
    path = Path(directory) / name
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); re-save the model") from e
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CheckpointError(f"{path} has keys {unknown} that {config_cls.__name__} does not know")
    try:
        return config_cls(**checked_fields(config_cls, raw))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid {config_cls.__name__}: {e}") from e


def load_weights(directory: str | os.PathLike, module: nn.Module) -> nn.Module:
    """Strictly assign ``model.safetensors`` of ``directory`` to ``module`` (built on meta)."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: the weights file is missing; re-save or re-download the model")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({e})") from e
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{name}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if keys
        )
        raise CheckpointError(f"{path} does not match {Path(directory) / CONFIG_NAME}: {detail}")
    module.load_state_dict(state, strict=True, assign=True)
    return module


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a module without allocating memory for its parameters."""
    with torch.device("meta"):
        return factory()


def load_component(directory: str | os.PathLike, config_cls: type[T], module_cls: Callable[[T], nn.Module]
                   ) -> nn.Module:
    """What ``save_component`` wrote: ``module_cls(config)`` built on meta, weights assigned strictly, eval mode."""
    config = load_config(directory, config_cls)
    module = build_on_meta(lambda: module_cls(config))
    load_weights(directory, module)
    return module.eval()
