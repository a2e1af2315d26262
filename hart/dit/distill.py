"""``hart distill-diffusion``: a one-step student of a trained diffusion baseline, by DMD.

The teacher is a ``DiTPipeline``'s denoiser; the real score is the teacher with the pipeline's
guidance baked in (1 + cfg_scale); generator and fake score start as copies of it (``hart.dmd``,
DMD2's recipe by default: no regression, several fake-score updates per generator update). The
conditions are the text states of ``pool_prompts`` training captions, encoded once; each step draws
``batch_size`` of them. The result is a ``DiTPipeline`` whose denoiser is the generator and whose
settings say ``scheduler="one-step"``: one network call per image, no guidance at inference.

Run directory, checkpoints (no pickle), exact resume and the lock are the shared training core's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hart.data import captioned_stream
from hart.diffusion import GaussianDiffusion
from hart.distill_loop import DMDDistiller
from hart.dit.pipeline import DiTPipeline, DiTSettings, PackedTextDenoiser, pack_text
from hart.dmd import DMDConfig, generator_timestep, init_students
from hart.sampler import pad_left
from hart.training.digest import state_digest
from hart.training.rundir import RunDirectory
from hart.training.state import STATE_NAME

POOL_SEED_OFFSET = 7_919  # the pool's captions differ from the training stream's first items


@dataclass(frozen=True)
class DistillDiffusionConfig:
    """Everything a baseline distillation depends on; saved as ``train_config.json``."""

    model: str  # teacher DiTPipeline directory (or shipped name)
    out_dir: str
    data: str = "shapes"  # whose captions condition the student
    steps: int = 1000
    batch_size: int = 32  # images per DMD step
    pool_prompts: int = 1024
    fake_steps: int = 5
    generator_lr: float = 1e-5
    fake_lr: float = 1e-5
    generator_t_frac: float = 0.98
    log_every: int = 10
    ckpt_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.pool_prompts, self.fake_steps) < 1:
            raise ValueError("steps, batch_size, pool_prompts and fake_steps must be at least 1")


class DiffusionDistiller(DMDDistiller):
    """Holds one distillation of a baseline; ``run()`` trains to ``cfg.steps`` from wherever it stands."""

    KIND, DESC = "distill-diffusion", "distill-diffusion"

    def __init__(self, cfg: DistillDiffusionConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.rundir = RunDirectory(self.out, resume, overwrite)
        self.pipe = DiTPipeline.from_pretrained(cfg.model)
        if self.pipe.settings.scheduler == "one-step":
            raise ValueError(f"{cfg.model} is already a one-step student; distil its multi-step teacher")
        self.teacher = PackedTextDenoiser(self.pipe.denoiser).eval()
        self.teacher_digest = state_digest(self.pipe.denoiser.state_dict())
        self.guidance = 1.0 + self.pipe.settings.cfg_scale
        self.dmd_cfg = DMDConfig(guidance_scale=self.guidance, fake_steps_per_generator_step=cfg.fake_steps,
                                 generator_lr=cfg.generator_lr, fake_lr=cfg.fake_lr,
                                 generator_t_frac=cfg.generator_t_frac, seed=cfg.seed)
        self.diffusion = GaussianDiffusion(self.pipe.denoiser.config.train_steps)
        self.gen, self.fake, self.opt_g, self.opt_f = init_students(self.teacher, self.dmd_cfg)
        self.step, self.history = 0, []
        if resume and (self.out / STATE_NAME).is_file():
            self.load_checkpoint()
        self.cond, self.null = self.condition_pool()

    @torch.no_grad()
    def condition_pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed text states of the pool's captions (P, T, d + 1) and of the empty prompt (1, T, d + 1)."""
        seed = self.cfg.seed + POOL_SEED_OFFSET
        stream = captioned_stream(self.cfg.data, self.pipe.tokenizer.config.image_size, seed)
        prompts = [stream[i][1] for i in range(self.cfg.pool_prompts)]
        text, mask = zip(*(self.pipe.text_encoder(prompts[i:i + 256]) for i in range(0, len(prompts), 256)),
                         strict=True)
        null_text, null_mask = self.pipe.text_encoder([""])
        length = max(max(t.shape[1] for t in text), null_text.shape[1])
        cond = torch.cat([pack_text(pad_left(t, length), pad_left(m, length)) for t, m in zip(text, mask, strict=True)])
        return cond, pack_text(pad_left(null_text, length), pad_left(null_mask, length))

    def student_pipeline(self) -> DiTPipeline:
        t_gen = generator_timestep(self.diffusion.num_steps, self.cfg.generator_t_frac)
        settings = DiTSettings(cfg_scale=0.0, num_inference_steps=1, scheduler="one-step", generator_t=t_gen)
        p = self.pipe
        return DiTPipeline(p.text_encoder, self.gen.net.eval(), p.tokenizer, p.text_spec, settings)

    def pool_size(self) -> int:
        return len(self.cond)

    def step_inputs(self, pick: torch.Tensor) -> tuple:
        c = self.pipe.denoiser.config
        return self.cond[pick], (len(pick), c.latent_channels, c.latent_size, c.latent_size), self.null, None

    def final_pipeline(self) -> DiTPipeline:
        return self.student_pipeline()


def distill_diffusion(cfg: DistillDiffusionConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Distil ``cfg.model`` into a one-step student; returns the student's pipeline directory."""
    return DiffusionDistiller(cfg, resume=resume, overwrite=overwrite).run()
