"""The run loop both DMD distillers share (``hart distill-head``, ``hart distill-diffusion``).

A subclass sets, in its ``__init__``: ``cfg`` (steps, batch_size, log_every, ckpt_every, seed and
its own fields), ``out``, ``rundir``, ``teacher``, ``teacher_digest``, ``dmd_cfg``, ``diffusion``,
``gen``, ``fake``, ``opt_g``, ``opt_f`` (``hart.dmd.init_students``), ``step`` and ``history``
(then ``load_checkpoint()`` when resuming); and defines ``KIND``, ``DESC``, ``pool_size()``,
``step_inputs(pick)`` -> (cond, noise_shape, null_cond, regression) for ``hart.dmd.dmd_step``, and
``final_pipeline()`` (an object with ``save_pretrained``). Each step draws ``batch_size`` pool rows
with ``sample_generator(seed, -1 - step)``, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hart.dmd import dmd_step
from hart.training.loop import RunLog, check_finite_weights, check_resume_config, run_owned, sample_generator
from hart.training.state import STATE_NAME, load_training_state, save_training_state
from tokenizer.checkpoint import save_json


class DMDDistiller:
    KIND = ""
    DESC = ""

    def pool_size(self) -> int:
        raise NotImplementedError

    def step_inputs(self, pick: torch.Tensor) -> tuple:
        raise NotImplementedError

    def final_pipeline(self):
        raise NotImplementedError

    def load_checkpoint(self) -> None:
        path = self.out / STATE_NAME
        state = load_training_state(path)
        if state.get("kind") != self.KIND:
            raise RuntimeError(f"{path} is not a checkpoint of `hart {self.KIND}` (kind {state.get('kind')!r})")
        if state["teacher_digest"] != self.teacher_digest:
            raise RuntimeError(f"checkpoint {path} distils another model than {self.cfg.model}'s (weights changed "
                               "since); start afresh in a new --out-dir")
        check_resume_config(state["train_config"], dataclasses.asdict(self.cfg), path)
        for module, key in ((self.gen, "generator"), (self.fake, "fake"), (self.opt_g, "opt_g"), (self.opt_f, "opt_f")):
            module.load_state_dict(state[key])
        self.step, self.history = state["step"], state["history"]

    def save_checkpoint(self) -> None:
        check_finite_weights([("generator", self.gen), ("fake score", self.fake)])
        save_training_state(self.out / STATE_NAME, {
            "kind": self.KIND, "step": self.step, "generator": self.gen.state_dict(),
            "fake": self.fake.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_f": self.opt_f.state_dict(),
            "history": self.history, "teacher_digest": self.teacher_digest,
            "train_config": dataclasses.asdict(self.cfg)})

    def run(self, until: int | None = None) -> Path | None:
        """Distil to ``cfg.steps`` (or stop at ``until`` with a checkpoint); the final directory or None."""
        return run_owned(self, until, processes=1)  # small models: one process

    def train(self, until: int | None = None) -> Path | None:
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        log = RunLog(self.out / "log.jsonl", True)
        log.restart(self.history)
        save_json(self.out / "train_config.json", dataclasses.asdict(cfg))
        self.bar = bar = tqdm(total=cfg.steps, initial=self.step, desc=self.DESC)
        while self.step < stop:
            rng = sample_generator(cfg.seed, -1 - self.step)
            cond, shape, null, regression = self.step_inputs(torch.randint(self.pool_size(), (cfg.batch_size,),
                                                                           generator=rng))
            logs = dmd_step(self.gen, self.fake, self.teacher, self.opt_g, self.opt_f, self.diffusion, cond, shape,
                            self.dmd_cfg, self.step, null_cond=null, regression=regression)
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == stop:
                row = {k: round(v, 6) for k, v in logs.items()} | {"step": self.step}
                self.history.append(row)
                log.append(row)
                bar.set_postfix(dm=f"{row['dm_grad_abs']:.3f}", fake=f"{row['fake_loss']:.3f}")
            bar.update(1)
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        if self.step < cfg.steps:
            return None
        return self.final_pipeline().save_pretrained(self.out / "final")
