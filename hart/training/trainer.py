"""The optimizer-step loop every generator trainer shares (``hart train`` and ``hart train-diffusion``).

A subclass's ``__init__`` calls ``begin`` (config with steps, batch_size, grad_accum, lr schedule
fields, grad_clip, ema_decay, ema_warmup, log_every, sample_every, ckpt_every, num_workers,
mixed_precision, max_skipped_steps; Accelerator, run directory, layout), builds ``data`` (an
indexed captioned stream), its model, optimizer and ``ema`` copy, then calls ``finish_setup``; and
it defines what differs:

- ``KIND`` (the checkpoint's ``kind``) and ``DESC`` (the progress bar's label);
- ``loss(items, images, captions)``: a dict of scalar tensors for one micro-batch;
- ``objective(logs)``: what is back-propagated; ``guard_total(logs)``: what the divergence guard sums;
- ``postfix(row)``: the progress bar's fields from a log row;
- ``checkpoint_extras()``: what its checkpoint holds beyond model, EMA, optimizer, history, layout;
- ``save_samples()`` and ``final_pipeline()`` (an object with ``save_pretrained``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from hart.data import Indexed, collate
from hart.training.distributed import (
    current_layout,
    reduce_logs,
    refuse_unsupported_distribution,
    say,
    single_process_launch_note,
    slow_bf16_note,
)
from hart.training.loop import NonFiniteGuard, RunLog, check_finite_weights, guarded_step, run_owned
from hart.training.rundir import RunDirectory
from hart.training.schedule import ema_decay_at, ema_update_, lr_at
from hart.training.state import STATE_NAME, refuse_legacy_checkpoint, save_training_state
from tokenizer.checkpoint import save_json
from tokenizer.data.sources import StepBatches


class StepTrainer:
    KIND = ""
    DESC = ""

    # ------------------------------------------------------------------ what subclasses define
    def loss(self, items: list[int], images: torch.Tensor, captions: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def objective(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def guard_total(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.objective(logs)

    def postfix(self, row: dict) -> dict[str, str]:
        return {"img_s": f"{row['img_s']:.1f}"}

    def checkpoint_extras(self) -> dict:
        return {}

    def save_samples(self) -> Path:
        raise NotImplementedError

    def final_pipeline(self):
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def begin(self, cfg, resume: bool, overwrite: bool, command: str) -> None:
        """The first lines of every trainer's ``__init__``: config, Accelerator, run directory, launch notes."""
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
        refuse_unsupported_distribution(self.acc)
        self.rundir = RunDirectory(self.out, resume, overwrite) if self.acc.is_main_process else None
        say(self.acc, command, single_process_launch_note(self.acc))
        say(self.acc, command, slow_bf16_note(self.acc))
        self.layout = current_layout(self.acc, cfg)
        self.step, self.history = 0, []
        if resume:
            refuse_legacy_checkpoint(self.out)

    def finish_setup(self, model: nn.Module, opt: torch.optim.Optimizer, state: dict | None) -> None:
        """The last lines of every trainer's ``__init__``: EMA copy (made by the caller as ``self.ema``),
        the checkpoint's weights and position when resuming, accelerate's wrapping, the divergence guard."""
        if state:
            model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            self.step, self.history = state["step"], state["history"]
        self.model, self.opt = self.acc.prepare(model, opt)
        self.ema.to(self.acc.device)
        self.guard = NonFiniteGuard(self.cfg.max_skipped_steps, self.out / STATE_NAME)

    def run(self, until: int | None = None) -> Path | None:
        """Train to ``cfg.steps`` (or stop early at step ``until`` with a checkpoint).

        Returns the ``final`` model directory, or None when stopped early. Holds the run directory's
        lock meanwhile; Ctrl-C writes a checkpoint first (single process) and re-raises.
        """
        return run_owned(self, until, self.acc.num_processes)

    def save_checkpoint(self) -> None:
        """Written by the main process after a barrier; every process resumes from it."""
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            check_finite_weights([("model", model), ("ema", self.ema)])
            state = {"kind": self.KIND, "step": self.step, "model": model.state_dict(), "ema": self.ema.state_dict(),
                     "opt": self.opt.state_dict(), "history": self.history, "layout": self.layout.to_dict(),
                     "next_item": self.step * self.layout.global_batch,
                     "train_config": dataclasses.asdict(self.cfg), **self.checkpoint_extras()}
            save_training_state(self.out / STATE_NAME, state)
        self.acc.wait_for_everyone()

    def train(self, until: int | None = None) -> Path | None:
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        log = RunLog(self.out / "log.jsonl", self.acc.is_main_process)
        log.restart(self.history)
        if self.acc.is_main_process:
            save_json(self.out / "train_config.json", dataclasses.asdict(cfg))
        sampler = StepBatches(cfg.batch_size, self.step * cfg.grad_accum, self.acc.process_index,
                              self.acc.num_processes)
        batches = iter(torch.utils.data.DataLoader(Indexed(self.data), batch_sampler=sampler, collate_fn=collate,
                                                   num_workers=cfg.num_workers))
        self.bar = bar = tqdm(total=cfg.steps, initial=self.step, desc=self.DESC,
                              disable=not self.acc.is_main_process)
        t0, seen = time.perf_counter(), 0
        while self.step < stop:
            for group in self.opt.param_groups:
                group["lr"] = lr_at(self.step, cfg)
            for _ in range(cfg.grad_accum):
                items, images, captions = next(batches)
                with self.acc.accumulate(self.model):
                    with self.acc.autocast():
                        logs = self.loss(items, images.to(self.acc.device), captions)
                    self.acc.backward(self.objective(logs))
                    if self.acc.sync_gradients:
                        guarded_step(self.acc, self.model, self.opt, self.guard, self.step,
                                     self.guard_total(logs), logs, cfg.grad_clip)
                seen += len(captions) * self.acc.num_processes
            decay = ema_decay_at(self.step, cfg.ema_decay, cfg.ema_warmup)
            ema_update_(self.ema, self.acc.unwrap_model(self.model), decay)
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == stop:
                row = {k: round(v, 5) for k, v in reduce_logs(self.acc, logs).items()}
                row.update(step=self.step, lr=lr_at(self.step - 1, cfg), img_s=seen / (time.perf_counter() - t0))
                self.history.append(row)
                bar.set_postfix(**self.postfix(row))
                log.append(row)
            bar.update(1)
            if self.acc.is_main_process and cfg.sample_every and self.step % cfg.sample_every == 0:
                self.save_samples()
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        if self.step < cfg.steps:
            return None
        final = self.out / "final"
        if self.acc.is_main_process:
            self.final_pipeline().save_pretrained(final)
        self.acc.wait_for_everyone()
        return final
