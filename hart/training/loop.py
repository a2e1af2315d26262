"""Pieces of the training loop that every trainer runs the same way.

- ``sample_generator``: the randomness of one training sample, a function of (seed, stream index)
  only, so it does not depend on the batch size, the process count or a resume.
- ``NonFiniteGuard``: a step whose loss or gradient is not finite is skipped; too many in a row stop
  the run with an error that says what diverged and where, before anything non-finite is written.
- ``check_resume_config``: a resumed run may change how long it trains and how it logs, not what
  it trains.
- ``RunLog``: ``log.jsonl`` is rewritten from the checkpoint's history on resume, so steps after
  the last checkpoint are not logged twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from hart.training.distributed import sum_over_processes
from tokenizer.checkpoint import atomic_write

SEED_MIX = 0x9E3779B97F4A7C15  # golden-ratio multiplier: spreads (seed, index) pairs over 63 bits


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The generator of stream item ``index`` of a run seeded ``seed``."""
    return torch.Generator().manual_seed((seed * SEED_MIX + index) % 2**63)


class TrainingDiverged(RuntimeError):
    """The loss or the gradient stayed non-finite; nothing non-finite was saved."""


class NonFiniteGuard:
    """Counts consecutive optimizer steps skipped for a non-finite loss or gradient norm."""

    def __init__(self, max_skipped: int, checkpoint: Path) -> None:
        self.max_skipped, self.checkpoint, self.skipped = max_skipped, checkpoint, 0

    def allow_step(self, step: int, bad_loss: bool, grad_norm: torch.Tensor, losses: dict[str, float]) -> bool:
        """True when the step may update the weights; raises after too many bad steps in a row.

        ``bad_loss`` and ``grad_norm`` must already agree over processes (reduced, or computed from
        the averaged gradients) so that every process takes the same decision.
        """
        bad_grad = not bool(torch.isfinite(grad_norm))
        if not (bad_loss or bad_grad):
            self.skipped = 0
            return True
        self.skipped += 1
        if self.skipped > self.max_skipped:
            what = "loss" if bad_loss else "gradient norm"
            shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
            kept = (f"the last good checkpoint {self.checkpoint} is kept" if self.checkpoint.is_file()
                    else "no checkpoint was written")
            raise TrainingDiverged(
                f"training diverged: non-finite {what} at step {step + 1} ({shown}; grad norm "
                f"{float(grad_norm):.4g}), {self.skipped} step(s) in a row; {kept}. Lower --lr, raise "
                "--warmup-steps or --grad-clip, then start afresh or --resume from the checkpoint")
        return False


def guarded_step(acc, model: nn.Module, opt: torch.optim.Optimizer, guard: NonFiniteGuard, step: int,
                 loss: torch.Tensor, logs: dict[str, torch.Tensor], grad_clip: float) -> None:
    """Clip (``grad_clip`` 0: only measure), decide once for all processes whether ``loss`` and the
    averaged gradient are finite, step the optimizer if so, zero the gradients."""
    norm = acc.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    bad = sum_over_processes(acc, (~torch.isfinite(loss.detach())).float().reshape(1))
    losses = {k: float(v.detach()) for k, v in logs.items()}
    if guard.allow_step(step, bool(bad.item() > 0), norm.detach().cpu(), losses):
        opt.step()
    opt.zero_grad(set_to_none=True)


def check_start_unchanged(stored: str | None, now: str | None, source: str | None, path: Path) -> None:
    """A resumed stage's start (``init_from``) must hold the weights it had when the stage began."""
    if stored != now:
        raise RuntimeError(
            f"checkpoint {path} was started from {source} when its weights had digest {stored}; they now have "
            f"{now}: the earlier stage was retrained since. Start this stage afresh in a new --out-dir (or delete "
            "the checkpoint)")


def check_finite_weights(modules: Iterable[tuple[str, nn.Module]]) -> None:
    """Refuse to save weights that hold NaN or inf (the guard should have stopped the run before)."""
    for name, module in modules:
        for pname, p in module.state_dict().items():
            if p.is_floating_point() and not bool(torch.isfinite(p).all()):
                raise TrainingDiverged(f"refusing to save: {name}.{pname} holds non-finite values")


# What a resumed run may change: its length, logging, sampling previews and data-loader workers.
# Batch size and gradient accumulation may change together when the global batch is kept
# (``distributed.check_resume_layout``); anything else would train another model.
RESUMABLE_KEYS = frozenset({"out_dir", "steps", "log_every", "sample_every", "ckpt_every", "sample_prompts",
                            "num_workers", "batch_size", "grad_accum", "max_skipped_steps"})


# Settings added after runs were recorded without them: the value those runs trained with.
LEGACY_DEFAULTS = {"ema_warmup": False}


def check_resume_config(stored: dict, now: dict, path: Path) -> None:
    """Refuse to resume ``path`` with settings that would make the result another model."""
    stored = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k in now}, **stored}
    changed = sorted(k for k in set(stored) | set(now)
                     if k not in RESUMABLE_KEYS and _norm(stored.get(k)) != _norm(now.get(k)))
    if changed:
        detail = "; ".join(f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise RuntimeError(f"cannot resume {path} with other settings ({detail}): they would train another "
                           "model. Resume with the recorded settings (train_config.json), or start afresh in a "
                           f"new --out-dir. A resume may change only {sorted(RESUMABLE_KEYS - {'out_dir'})}")


def _norm(value):
    """Lists and tuples compare equal (JSON has no tuples)."""
    return [_norm(v) for v in value] if isinstance(value, (list, tuple)) else value


class RunLog:
    """``log.jsonl`` of a run directory, written by the main process only."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def restart(self, history: list[dict]) -> None:
        """Make the file hold exactly ``history`` (the rows up to the step being resumed)."""
        if self.enabled:
            text = "".join(json.dumps(row) + "\n" for row in history)
            atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def append(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")


def run_owned(trainer, until: int | None, processes: int):
    """``trainer.train(until)`` while holding its run directory (``trainer.rundir``, main process only).

    Ctrl-C writes a checkpoint first (single process: under ``accelerate launch`` the processes are
    interrupted at different points, so the last periodic checkpoint is what a resume continues),
    then re-raises; the progress bar is closed on any exit so that a message starts on its own line.
    """
    if trainer.rundir is not None:
        trainer.rundir.acquire()
    try:
        return trainer.train(until)
    except KeyboardInterrupt:
        if processes == 1 and trainer.step > 0:
            trainer.save_checkpoint()
        raise
    finally:
        if getattr(trainer, "bar", None) is not None:
            trainer.bar.close()
        if trainer.rundir is not None:
            trainer.rundir.release()

