"""Distil a pipeline's residual diffusion head into a one-step head with DMD (``hart distill-head``).

The conditions z are the ones the head sees at inference: the transformer samples the discrete
tokens of ``pool_images`` training prompts with the pipeline's own sampling defaults, and the
head's inputs at the final scale (z of the prompt and of the null prompt, for the same sampled
codes) are recorded (``record_conditions``). Each DMD step draws ``batch_size`` of those tokens.
The real score is the frozen 8-step head with the sampler's final-scale guidance baked in
(1 + cfg_scale, ``hart.sampler``); generator and fake score start as copies of it (``hart.dmd``).
The result is the teacher pipeline plus ``diffusion_head_1step/``, used by ``diffusion_steps=1``.

Run directory, checkpoints (no pickle), exact resume and the lock are the shared training core's
(``hart.training``); the condition pool is rebuilt from its seed on resume.

Shapes: N tokens of the pool, B tokens per step, C latent channels, D condition width.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hart.data import captioned_stream
from hart.diffusion import GaussianDiffusion
from hart.distill_loop import DMDDistiller
from hart.dmd import DMDConfig, ddim_sample, generator_timestep, init_students, regression_pairs
from hart.pipeline import HARTPipeline
from hart.training.digest import state_digest
from hart.training.rundir import RunDirectory
from hart.training.state import STATE_NAME

POOL_SEED_OFFSET = 7_919  # the pool's prompts and sampling seed differ from the training stream's items


@dataclass(frozen=True)
class DistillHeadConfig:
    """Everything a head distillation depends on; saved as ``train_config.json``."""

    model: str  # teacher pipeline: shipped name or directory
    out_dir: str
    data: str = "shapes"  # whose captions are the training prompts: shapes, emoji or an image-text folder
    steps: int = 1000
    batch_size: int = 1024  # residual tokens per DMD step
    pool_images: int = 256  # images sampled by the transformer for the condition pool
    regression_weight: float = 0.0  # DMD's regression onto the teacher's 8-step outputs (0: DMD2)
    regression_tokens: int = 4096
    fake_steps: int = 5  # fake-score updates per generator update (DMD2's two time-scale rule)
    generator_lr: float = 1e-4
    fake_lr: float = 1e-4
    generator_t_frac: float = 0.98
    log_every: int = 10
    ckpt_every: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.pool_images, self.fake_steps) < 1:
            raise ValueError("steps, batch_size, pool_images and fake_steps must be at least 1")
        if self.regression_weight < 0 or (self.regression_weight > 0 and self.regression_tokens < 1):
            raise ValueError("regression_weight must be >= 0, with regression_tokens >= 1 when it is > 0")

    def dmd(self, guidance_scale: float) -> DMDConfig:
        return DMDConfig(guidance_scale=guidance_scale, regression_weight=self.regression_weight,
                         fake_steps_per_generator_step=self.fake_steps, generator_lr=self.generator_lr,
                         fake_lr=self.fake_lr, generator_t_frac=self.generator_t_frac, seed=self.seed)


class RecordingHead(nn.Module):
    """The teacher head, recording the conditions of its first call (the sampler's z, then z_null)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head, self.z = head, None

    @property
    def config(self):
        return self.head.config

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.z is None:
            self.z = z.detach().clone()
        return self.head(x, t, z)


@torch.no_grad()
def record_conditions(pipe: HARTPipeline, prompts: list[str], seed: int, batch: int = 32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(z (N, D), z_null (N, D)): the head's final-scale conditions when ``pipe`` draws ``prompts``."""
    if pipe.settings.cfg_scale <= 0:
        raise ValueError("the teacher samples without guidance (cfg_scale 0): there is no null condition to record")
    conds, nulls = [], []
    original = pipe.head
    try:
        for i in range(0, len(prompts), batch):
            recorder = RecordingHead(original)
            pipe.head = recorder
            pipe(prompts[i:i + batch], seed=seed + i, diffusion_steps=1, progress=False)
            z, z_null = recorder.z.chunk(2)  # the sampler calls the head on [prompts; null prompts]
            conds.append(z)
            nulls.append(z_null)
    finally:
        pipe.head = original
    return torch.cat(conds), torch.cat(nulls)


class HeadDistiller(DMDDistiller):
    """Holds one distillation run; ``run()`` trains to ``cfg.steps`` from wherever it stands."""

    KIND, DESC = "distill-head", "distill-head"

    def __init__(self, cfg: DistillHeadConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.rundir = RunDirectory(self.out, resume, overwrite)
        self.pipe = HARTPipeline.from_pretrained(cfg.model)
        self.teacher = self.pipe.head.eval()
        self.teacher_digest = state_digest(self.teacher.state_dict())
        self.guidance = 1.0 + self.pipe.settings.cfg_scale  # the sampler's guidance at the final scale
        self.dmd_cfg = cfg.dmd(self.guidance)
        self.diffusion = GaussianDiffusion(self.teacher.config.train_steps)
        self.gen, self.fake, self.opt_g, self.opt_f = init_students(self.teacher, self.dmd_cfg)
        self.step, self.history = 0, []
        if resume and (self.out / STATE_NAME).is_file():
            self.load_checkpoint()
        self.z, self.z_null = self.condition_pool()
        self.regression = self.regression_set() if cfg.regression_weight > 0 else None

    def condition_pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        seed = self.cfg.seed + POOL_SEED_OFFSET
        stream = captioned_stream(self.cfg.data, self.pipe.tokenizer.config.image_size, seed)
        prompts = [stream[i][1] for i in range(self.cfg.pool_images)]
        return record_conditions(self.pipe, prompts, seed)

    def regression_set(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, z, the teacher's deterministic 8-step output) for the first ``regression_tokens`` of the pool."""
        n = min(self.cfg.regression_tokens, len(self.z))
        z, z_null, C = self.z[:n], self.z_null[:n], self.teacher.config.latent_channels

        def teacher(noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            return ddim_sample(self.teacher, self.diffusion, noise, cond, self.pipe.settings.diffusion_steps,
                               self.guidance, z_null, clip_x0=self.pipe.settings.clip_residual)

        noise, target = regression_pairs(teacher, z, (n, C), self.cfg.seed)
        return noise, z, target

    def distilled_pipeline(self) -> HARTPipeline:
        from hart.one_step import OneStepSpec

        spec = OneStepSpec(generator_t=generator_timestep(self.diffusion.num_steps, self.cfg.generator_t_frac),
                           clip_x0=self.pipe.settings.clip_residual, teacher_steps=self.pipe.settings.diffusion_steps,
                           guidance_scale=self.guidance)
        p = self.pipe
        return HARTPipeline(p.text_encoder, p.transformer, p.head, p.tokenizer, p.text_spec, p.settings,
                            head_1step=copy.deepcopy(self.gen).requires_grad_(False).eval(), one_step=spec)

    # ------------------------------------------------------------------ DMDDistiller
    def pool_size(self) -> int:
        return len(self.z)

    def step_inputs(self, pick: torch.Tensor) -> tuple:
        C = self.teacher.config.latent_channels
        return self.z[pick], (len(pick), C), self.z_null[pick], self.regression

    def final_pipeline(self) -> HARTPipeline:
        return self.distilled_pipeline()


def distill_head(cfg: DistillHeadConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Distil ``cfg.model``'s head; returns the directory of the pipeline with its one-step head."""
    return HeadDistiller(cfg, resume=resume, overwrite=overwrite).run()

