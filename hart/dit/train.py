"""``hart train-diffusion``: train the latent diffusion baseline on the data of a HART model.

The denoiser learns epsilon-prediction on the cosine schedule of ``hart.diffusion`` (what diffusers
calls ``squaredcos_cap_v2``) in the continuous latent f of a frozen HART tokenizer (its encoder
output before quantisation), scaled to unit variance by 1 / std measured on the first batches.
Captions are dropped to the empty prompt with probability ``cfg_drop`` for classifier-free
guidance. The loop (accelerate, EMA, gradient accumulation, atomic checkpoints, exact resume,
divergence guard) is ``hart.training.trainer.StepTrainer``, shared with ``hart train``; per-sample
randomness (caption dropout, t, noise) is a function of (seed, stream index), as there.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from hart.data import captioned_stream
from hart.diffusion import GaussianDiffusion
from hart.dit.model import DIT_PRESETS
from hart.dit.pipeline import DiTPipeline
from hart.text_encoder import TextCache
from hart.training.digest import state_digest
from hart.training.distributed import check_resume_layout, say
from hart.training.loop import check_resume_config, sample_generator
from hart.training.schedule import check_run_lengths
from hart.training.state import STATE_NAME, load_training_state
from hart.training.trainer import StepTrainer
from tokenizer.data.images import image_grid
from tokenizer.hybrid import HybridTokenizer

SCALE_BATCHES = 4  # batches measured to set the latent scale


@dataclass(frozen=True)
class DiTTrainConfig:
    out_dir: str
    data: str = "shapes"
    preset: str = "cpu-64"
    tokenizer: str = ""  # shipped name or directory of a trained tokenizer ("" = the preset's, random)
    steps: int = 2000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 5e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    cfg_drop: float = 0.1
    ema_decay: float = 0.999
    ema_warmup: bool = True
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 250
    sample_prompts: tuple[str, ...] = (
        "a large red circle at the center on a white background",
        "a small blue square at the top left on a black background",
    )
    seed: int = 0
    mixed_precision: str = "no"
    num_workers: int = 0
    max_skipped_steps: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "sample_prompts", tuple(self.sample_prompts))
        if self.preset not in DIT_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(DIT_PRESETS)}")
        check_run_lengths(self)
        if not 0 <= self.cfg_drop < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("cfg_drop and ema_decay must lie in [0, 1)")
        if self.max_skipped_steps < 0:
            raise ValueError(f"max_skipped_steps must be >= 0, got {self.max_skipped_steps}")


class DiTTrainer(StepTrainer):
    KIND, DESC = "dit", "diffusion"

    def __init__(self, cfg: DiTTrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.begin(cfg, resume, overwrite, "train-diffusion")
        self.pipe = DiTPipeline.from_preset(cfg.preset, seed=cfg.seed)
        if cfg.tokenizer:
            self.pipe.tokenizer = HybridTokenizer.from_pretrained(cfg.tokenizer)
        self.tok = self.pipe.tokenizer.requires_grad_(False).eval().to(self.acc.device)
        self.tokenizer_digest = state_digest(self.tok.state_dict())
        self.pipe.text_encoder.model.to(self.acc.device)
        self.text = TextCache(self.pipe.text_encoder)
        self.data = captioned_stream(cfg.data, self.tok.config.image_size, cfg.seed)
        self.diffusion = GaussianDiffusion(self.pipe.denoiser.config.train_steps)
        state = self.read_checkpoint() if resume and (self.out / STATE_NAME).is_file() else None
        scale = state["latent_scale"] if state else self.measure_latent_scale()
        self.pipe.denoiser.config = dataclasses.replace(self.pipe.denoiser.config, latent_scale=scale)
        model = self.pipe.denoiser.train()
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.finish_setup(model, torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                                   weight_decay=cfg.weight_decay), state)

    @torch.no_grad()
    def measure_latent_scale(self) -> float:
        """1 / std of the tokenizer's latents f over a few batches (unit-variance diffusion input)."""
        B = self.cfg.batch_size
        images = torch.stack([self.data[10**9 + i][0] for i in range(SCALE_BATCHES * B)])
        f = torch.cat([self.tok.encode_latent(x.to(self.acc.device)) for x in images.split(B)])
        return float(1.0 / f.float().std().clamp_min(1e-6))

    def read_checkpoint(self) -> dict:
        path = self.out / STATE_NAME
        state = load_training_state(path)
        if state.get("kind") != self.KIND:
            raise RuntimeError(f"{path} is not a checkpoint of `hart train-diffusion` (kind {state.get('kind')!r}); "
                               "use the trainer that wrote it or a new --out-dir")
        if state["tokenizer_digest"] != self.tokenizer_digest:
            raise RuntimeError(f"checkpoint {path} was trained on another tokenizer (digest "
                               f"{state['tokenizer_digest']}, now {self.tokenizer_digest}); start afresh in a new "
                               "--out-dir")
        check_resume_config(state["train_config"], dataclasses.asdict(self.cfg), path)
        say(self.acc, "train-diffusion", check_resume_layout(state["layout"], self.layout, path))
        return state

    def checkpoint_extras(self) -> dict:
        return {"preset": self.cfg.preset, "latent_scale": self.pipe.denoiser.config.latent_scale,
                "tokenizer_digest": self.tokenizer_digest}

    def loss(self, items: list[int], images: torch.Tensor, captions: list[str]) -> dict[str, torch.Tensor]:
        c = self.pipe.denoiser.config
        with torch.no_grad():
            x0 = self.tok.encode_latent(images) * c.latent_scale  # (B, C, h, h)
            drop, t, noise = [], [], []
            for i in items:
                g = sample_generator(self.cfg.seed, i)
                drop.append(bool(torch.rand((), generator=g) < self.cfg.cfg_drop))
                t.append(torch.randint(self.diffusion.num_steps, (), generator=g))
                noise.append(torch.randn(x0.shape[1:], generator=g))
            t, noise = torch.stack(t).to(x0.device), torch.stack(noise).to(x0)
            x_t = self.diffusion.q_sample(x0.flatten(1), t, noise.flatten(1)).view_as(x0)
            text, mask = self.text(["" if d else cap for cap, d in zip(captions, drop, strict=True)])
        eps = self.model(x_t, t, text.to(x_t.dtype), mask)
        return {"diffusion": (eps.float() - noise.float()).pow(2).mean()}

    def objective(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        return logs["diffusion"]

    def postfix(self, row: dict) -> dict[str, str]:
        return {"loss": f"{row['diffusion']:.4f}", "img_s": f"{row['img_s']:.1f}"}

    def final_pipeline(self) -> DiTPipeline:
        return DiTPipeline(self.pipe.text_encoder, self.ema.eval(), self.tok, self.pipe.text_spec, self.pipe.settings)

    def save_samples(self) -> Path:
        images = self.final_pipeline()(list(self.cfg.sample_prompts), seed=0, progress=False).images
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_grid(images, len(images)).save(path)
        return path


def train_diffusion(cfg: DiTTrainConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Train the diffusion baseline; returns the final ``DiTPipeline`` directory."""
    return DiTTrainer(cfg, resume=resume, overwrite=overwrite).run()
