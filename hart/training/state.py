"""Training state on disk without pickle: one safetensors file, tensors plus a JSON description.

``torch.load`` of a pickled checkpoint runs whatever code the file names, so a checkpoint copied
from elsewhere could execute code on ``--resume``. Here every tensor of the (nested) state is a
safetensors entry and everything else (step, configuration, optimizer hyper-parameters, log
history) is JSON in the file's metadata; loading parses data only.

The state is a tree of dicts (str or int keys), lists, tuples, tensors and JSON scalars; other
objects are an error at save time, not a surprise at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tokenizer.checkpoint import atomic_write

STATE_NAME = "checkpoint.safetensors"
LEGACY_NAME = "checkpoint.pt"  # pickle checkpoints of earlier versions: never loaded
FORMAT = "hart-training-state/1"


class TrainingStateError(RuntimeError):
    """A training checkpoint is missing, unreadable, foreign or does not match the run."""


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able description of ``obj``; its tensors go to ``tensors`` under their tree path."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"training state key {k!r} at {path or '<root>'} is not a str or int")
        return {"__dict__": [[k, _encode(v, f"{path}.{k}" if path else str(k), tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"training state value at {path or '<root>'} has type {type(obj).__name__}, "
                    "which a checkpoint cannot hold (tensors, dicts, lists, tuples and JSON scalars only)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically to ``path`` (a temporary file beside it, then a rename)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, "", tensors)
    metadata = {"format": FORMAT, "tree": json.dumps(tree)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a state written by ``save_training_state``; anything else is a ``TrainingStateError``."""
    path = Path(path)
    if not path.is_file():
        raise TrainingStateError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no items())
        if metadata.get("format") != FORMAT:
            raise TrainingStateError(f"checkpoint {path} is not a hart training state "
                                     f"(format {metadata.get('format')!r}, expected {FORMAT!r})")
        return _decode(json.loads(metadata["tree"]), tensors)
    except TrainingStateError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise TrainingStateError(f"cannot read checkpoint {path} ({e}); it is corrupt or truncated: "
                                 "delete it (or start with a new --out-dir) to train afresh") from e


def refuse_legacy_checkpoint(run_dir: Path) -> None:
    """A pickle ``checkpoint.pt`` from an earlier version is not loaded: unpickling can run code."""
    legacy = Path(run_dir) / LEGACY_NAME
    if legacy.is_file() and not (Path(run_dir) / STATE_NAME).is_file():
        raise TrainingStateError(
            f"{legacy} is a pickle checkpoint of an earlier hart version; it is not loaded because "
            "unpickling a file can run arbitrary code. Start the run afresh in a new --out-dir "
            f"(checkpoints are now {STATE_NAME}, which holds data only)")
