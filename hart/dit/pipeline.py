"""``DiTPipeline``: text -> images with a latent diffusion baseline, called like ``HARTPipeline``.

A model directory holds ``denoiser/`` (``DiTConfig`` + weights), ``tokenizer/`` (the HART tokenizer
whose continuous latent the denoiser works in; only its decoder is used to draw),
``text_encoder/`` (as in a HART model directory) and ``pipeline.json`` (``DiTSettings``).

Sampling uses diffusers' schedulers configured with the cosine schedule the denoiser is trained on
(``squaredcos_cap_v2`` is IDDPM's cosine schedule, the one of ``hart.diffusion``): DPM-Solver++
(2nd order multistep) or DDIM (eta 0). Both are deterministic given the initial noise, which comes
from one CPU generator per image (``hart.seeding``), as in HART.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hart.diffusion import GaussianDiffusion
from hart.dit.model import DIT_PRESETS, DiTConfig, DiTDenoiser
from hart.dmd import one_step
from hart.pipeline import (
    PIPELINE_PRESETS,
    PipelineOutput,
    batches,
    build_text_encoder,
    call_generators,
    load_text_encoder,
    resolve_model_dir,
    save_text_encoder,
)
from hart.sampler import decode_image, module_dtype, prepare_text
from hart.text_encoder import TextEncoder
from hart.text_encoder_specs import TextEncoderSpec
from tokenizer.checkpoint import CheckpointError, load_config, load_weights, save_component, save_json
from tokenizer.config import PRESETS as TOKENIZER_PRESETS
from tokenizer.config_types import checked_fields
from tokenizer.data.images import to_pil
from tokenizer.finite import require_finite
from tokenizer.hybrid import HybridTokenizer

SCHEDULERS = ("dpm++", "ddim", "one-step")
MAX_TEXT_TOKENS = 300


@dataclass(frozen=True)
class DiTSettings:
    """Sampling defaults: guidance mixes (1 + cfg_scale) cond - cfg_scale uncond (HART's convention)."""

    cfg_scale: float = 3.0
    num_inference_steps: int = 20
    scheduler: str = "dpm++"  # "one-step": a DMD student, x0 of noise read as x_{generator_t}, no guidance
    generator_t: int = 980

    def __post_init__(self) -> None:
        for name, value in checked_fields(DiTSettings, dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)
        if not self.cfg_scale >= 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.scheduler == "one-step" and (self.num_inference_steps != 1 or self.cfg_scale != 0):
            raise ValueError("a one-step student runs 1 step without guidance (it is baked in): "
                             "num_inference_steps=1, cfg_scale=0")


def make_scheduler(name: str, train_steps: int):
    """A diffusers scheduler for the cosine-schedule, epsilon-prediction denoiser."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = {"num_train_timesteps": train_steps, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon"}
    if name == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **common)
    return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **common)


def pack_text(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) text states and their (B, T) mask as one (B, T, d + 1) condition tensor (``hart.dmd``'s cond)."""
    return torch.cat([text, mask[..., None].to(text.dtype)], dim=-1)


class PackedTextDenoiser(nn.Module):
    """A ``DiTDenoiser`` called as ``model(x_t, t, cond)`` with ``cond = pack_text(text, mask)``."""

    def __init__(self, net: DiTDenoiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t, cond[..., :-1], cond[..., -1] > 0.5)


class DiTPipeline:
    """Text encoder + DiT denoiser + the decoder of a HART tokenizer."""

    def __init__(self, text_encoder: TextEncoder, denoiser: DiTDenoiser, tokenizer: HybridTokenizer,
                 text_spec: TextEncoderSpec, settings: DiTSettings = DiTSettings()) -> None:
        c, t = denoiser.config, tokenizer.config
        if (c.latent_channels, c.latent_size) != (t.latent_channels, t.patch_nums[-1]):
            raise ValueError(f"denoiser latent {c.latent_channels} x {c.latent_size}^2 does not match the tokenizer's "
                             f"{t.latent_channels} x {t.patch_nums[-1]}^2")
        if c.text_dim != text_encoder.width:
            raise ValueError(f"denoiser text_dim {c.text_dim} != text encoder width {text_encoder.width}")
        self.text_encoder, self.denoiser, self.tokenizer = text_encoder, denoiser.eval(), tokenizer.eval()
        self.text_spec, self.settings = text_spec, settings

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, device: str | torch.device = "cpu") -> DiTPipeline:
        """Random weights; ``name`` is a HART pipeline preset with a DiT preset of the same name (cpu-64, tiny)."""
        if name not in DIT_PRESETS:
            raise KeyError(f"unknown DiT preset {name!r}; known: {sorted(DIT_PRESETS)}")
        hart_preset = PIPELINE_PRESETS[name]
        torch.manual_seed(seed)
        with torch.device(device):
            tok = HybridTokenizer(TOKENIZER_PRESETS[hart_preset.tokenizer])
            den = DiTDenoiser(DIT_PRESETS[name])
        te = build_text_encoder(hart_preset.text_encoder, MAX_TEXT_TOKENS, seed)
        return cls(te, den, tok, hart_preset.text_encoder).to(device)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        text_encoder: str | None = None, verbose: bool | None = None) -> DiTPipeline:
        root = resolve_model_dir(name_or_dir)
        if not (root / "denoiser").is_dir():
            raise CheckpointError(f"{root} is not a diffusion baseline directory (no denoiser/); "
                                  "HART models load with HARTPipeline.from_pretrained")
        # Built for real, not on meta: diffusers keeps the position embedding as a non-persistent buffer.
        den = DiTDenoiser(load_config(root / "denoiser", DiTConfig))
        load_weights(root / "denoiser", den)
        tok = HybridTokenizer.from_pretrained(root / "tokenizer")
        te, spec = load_text_encoder(root, MAX_TEXT_TOKENS, text_encoder, verbose)
        settings = load_config(root, DiTSettings, "pipeline.json")
        return cls(te, den, tok, spec, settings).to(device)

    def save_pretrained(self, directory: str | os.PathLike, embed_text_encoder: bool = False) -> Path:
        root = Path(directory)
        save_component(root / "denoiser", self.denoiser.config, self.denoiser)
        self.tokenizer.save_pretrained(root / "tokenizer")
        save_text_encoder(root, self.text_encoder, self.text_spec, embed_text_encoder)
        save_json(root / "pipeline.json", dataclasses.asdict(self.settings))
        return root

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> DiTPipeline:
        for module in (self.denoiser, self.tokenizer, self.text_encoder.model):
            module.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @torch.no_grad()
    def __call__(self, prompts: str | list[str], seed: int | None = 0, batch_size: int = 8, progress: bool = True,
                 generator: torch.Generator | list[torch.Generator] | None = None, **overrides) -> PipelineOutput:
        """One image per prompt. ``overrides``: cfg_scale, num_inference_steps, scheduler ("dpm++", "ddim")."""
        prompts = self.text_encoder.check_prompts(prompts)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(DiTSettings)}
        if unknown:
            raise TypeError(f"unknown sampling settings {sorted(unknown)}; known: "
                            f"{[f.name for f in dataclasses.fields(DiTSettings)]}")
        settings = dataclasses.replace(self.settings, **{k: v for k, v in overrides.items() if v is not None})
        images = []
        for _, chunk, rows in batches(prompts, call_generators(seed, generator, len(prompts)), batch_size, progress):
            images += self.sample(chunk, settings, rows)
        return PipelineOutput(images=images)

    def sample(self, prompts: list[str], s: DiTSettings, generator) -> list:
        c = self.denoiser.config
        dtype = next(self.denoiser.parameters()).dtype
        B, shape = len(prompts), (c.latent_channels, c.latent_size, c.latent_size)
        if isinstance(generator, (list, tuple)):
            noise = torch.stack([torch.randn(shape, generator=g) for g in generator])
        else:
            noise = torch.randn((B, *shape), generator=generator)
        x = noise.to(self.device, dtype)
        text, mask = self.text_encoder(prompts)
        guided = s.cfg_scale > 0
        if guided:
            text, mask = prepare_text((text, mask), self.text_encoder([""]))
        text = text.to(dtype)
        if s.scheduler == "one-step":
            x = one_step(PackedTextDenoiser(self.denoiser), GaussianDiffusion(c.train_steps), x,
                         pack_text(text, mask), s.generator_t)
            return self.decode(x)
        scheduler = make_scheduler(s.scheduler, c.train_steps)
        scheduler.set_timesteps(s.num_inference_steps, device=self.device)
        for t in scheduler.timesteps:
            inp = torch.cat([x, x]) if guided else x
            eps = self.denoiser(inp, t.expand(len(inp)).to(self.device), text, mask)
            if guided:
                cond, uncond = eps.chunk(2)
                eps = (1 + s.cfg_scale) * cond - s.cfg_scale * uncond
            x = scheduler.step(eps, t, x, return_dict=False)[0]
        return self.decode(x)

    def decode(self, x: torch.Tensor) -> list:
        """PIL images of scaled latents x (B, C, h, h)."""
        f = require_finite(x, "diffusion baseline denoiser") / self.denoiser.config.latent_scale
        return [to_pil(im) for im in decode_image(self.tokenizer, f.to(module_dtype(self.tokenizer))).float()]

