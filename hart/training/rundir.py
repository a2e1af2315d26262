"""Ownership of a run directory: one live run at a time, no silent replacement of a finished one.

- A lock file (``.lock``, holding host and pid) exists while a run is live; a second run into the
  directory fails at once and names the holder. A lock left by a dead process (a kill -9) or by
  this very process (a trainer built again in the same Python session) is taken over.
- A directory that already holds a run (checkpoint, ``final/`` or log) is refused without
  ``--resume`` (continue it) or ``--overwrite`` (replace it: its checkpoint, final model, log and
  samples are removed first).
- Temporary files left by a write that was killed half-way are removed when the run starts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("checkpoint.safetensors", "checkpoint.pt", "log.jsonl", "train_config.json")
RUN_DIRS = ("final", "samples")


class RunDirectoryError(RuntimeError):
    """The run directory is in use, or holds a run that the command would silently replace."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirectory:
    """Held by the main process of a run, from the trainer's construction to the end of ``run``."""

    def __init__(self, path: Path, resume: bool, overwrite: bool) -> None:
        self.path, self.lock = Path(path), Path(path) / LOCK_NAME
        self.path.mkdir(parents=True, exist_ok=True)
        self.acquire()
        try:
            self.check_contents(resume, overwrite)
        except BaseException:
            self.release()
            raise
        self.remove_stale_temporaries()

    def acquire(self) -> None:
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                live = holder.get("pid") != me["pid"] and (holder.get("host") != me["host"] or
                                                           _alive(int(holder.get("pid", -1))))
                if live:
                    raise RunDirectoryError(
                        f"run directory {self.path} is in use by process {holder.get('pid')} on "
                        f"{holder.get('host')} (lock file {self.lock}); wait for that run to end or use "
                        "another --out-dir. If that process is gone, delete the lock file") from None
                self.lock.unlink(missing_ok=True)  # stale: its process died, or it is our own
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return
        raise RunDirectoryError(f"cannot take the lock {self.lock}; another run keeps recreating it")

    def holder(self) -> dict:
        try:
            return json.loads(self.lock.read_text())
        except (OSError, ValueError):
            return {}

    def check_contents(self, resume: bool, overwrite: bool) -> None:
        present = [n for n in RUN_FILES if (self.path / n).is_file()] + \
                  [n + "/" for n in RUN_DIRS if (self.path / n).is_dir()]
        if not present or resume:
            return
        if not overwrite:
            raise RunDirectoryError(
                f"{self.path} already holds a run ({', '.join(present)}): use --resume to continue it, "
                "--overwrite to replace it, or another --out-dir")
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(self.path / name, ignore_errors=True)

    def remove_stale_temporaries(self) -> None:
        """``atomic_write`` temporaries (``.NAME.XXXX.tmp``) of writes that a kill interrupted."""
        for folder in (self.path, *(p for p in (self.path / "final").glob("*") if p.is_dir()), self.path / "final"):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if self.holder().get("pid") == os.getpid():
            self.lock.unlink(missing_ok=True)
