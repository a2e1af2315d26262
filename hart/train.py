"""Stage-2 training: transformer + residual diffusion head on a frozen tokenizer and text encoder.

Loss (HART Sec. 3.3): cross-entropy on the discrete tokens of all scales + the diffusion loss of
the head on the final-scale residual tokens (scaled by 1 / std of residuals measured on the first
batches, stored in the head's config), the head seeing a random ``head_token_ratio`` of the
final-scale tokens, each repeated ``batch_mul`` times (MAR). Captions are dropped to the empty
prompt with probability ``cfg_drop`` (10%, drawn uniformly: HART's ``randn < 0.1`` dropped ~54%).

One loop from one CPU to many GPUs and nodes through ``accelerate``, with gradient accumulation,
mixed precision, EMA, atomic checkpoints and exact resume (all randomness is a function of
(seed, step)). The final directory is a ``HARTPipeline.save_pretrained`` of the EMA weights.

Shapes: B batch, L tokens over all scales, l tokens of the final scale, V vocab, C channels.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from hart.data import captioned_stream, collate
from hart.diffusion import GaussianDiffusion
from hart.pipeline import PIPELINE_PRESETS, HARTPipeline
from hart.text_encoder import TextCache
from tokenizer.checkpoint import atomic_write, read_training_state, save_json
from tokenizer.data.images import image_grid
from tokenizer.data.sources import StepBatches
from tokenizer.hybrid import HybridTokenizer
from tokenizer.train import check_run_lengths, lr_at

CHECKPOINT_NAME = "checkpoint.pt"
SCALE_BATCHES = 4  # batches measured to set the residual scale


@dataclass(frozen=True)
class HARTTrainConfig:
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
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 2.0
    cfg_drop: float = 0.1
    diffusion_weight: float = 1.0
    head_token_ratio: float = 0.5
    ema_decay: float = 0.999
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 250
    sample_prompts: tuple[str, ...] = (
        "a large red circle at the center on a white background",
        "a small blue square at the top left on a black background",
        "a large yellow triangle at the bottom right on a white background",
        "a small green circle at the right on a black background",
    )
    seed: int = 0
    mixed_precision: str = "no"
    num_workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "sample_prompts", tuple(self.sample_prompts))
        if self.preset not in PIPELINE_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(PIPELINE_PRESETS)}")
        check_run_lengths(self)
        if not 0 <= self.cfg_drop < 1 or not 0 < self.head_token_ratio <= 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("cfg_drop must lie in [0, 1), head_token_ratio in (0, 1], ema_decay in [0, 1)")


class HARTTrainer:
    def __init__(self, cfg: HARTTrainConfig, resume: bool = False) -> None:
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
        self.pipe = HARTPipeline.from_preset(cfg.preset, seed=cfg.seed)
        if cfg.tokenizer:
            self.pipe.tokenizer = HybridTokenizer.from_pretrained(cfg.tokenizer)
        self.tok = self.pipe.tokenizer.requires_grad_(False).eval().to(self.acc.device)
        self.pipe.text_encoder.model.to(self.acc.device)
        self.text = TextCache(self.pipe.text_encoder)  # captions repeat: encode each once
        self.data = captioned_stream(cfg.data, self.tok.config.image_size, cfg.seed)
        self.diffusion = GaussianDiffusion(self.pipe.head.config.train_steps)
        self.step, self.history = 0, []
        state = self.read_checkpoint() if resume and (self.out / CHECKPOINT_NAME).is_file() else None
        scale = state["residual_scale"] if state else self.measure_residual_scale()
        self.pipe.head.config = dataclasses.replace(self.pipe.head.config, residual_scale=scale)
        self.model = torch.nn.ModuleDict({"transformer": self.pipe.transformer, "head": self.pipe.head}).train()
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        if state:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["opt"])
            self.step, self.history = state["step"], state["history"]
        self.model, self.opt = self.acc.prepare(self.model, self.opt)
        self.ema.to(self.acc.device)

    # ------------------------------------------------------------------ setup
    @torch.no_grad()
    def measure_residual_scale(self) -> float:
        """1 / std of the tokenizer's residuals over a few batches (HART uses a fixed 1 / 0.6)."""
        B = self.cfg.batch_size
        images = torch.stack([self.data[10**9 + i][0] for i in range(SCALE_BATCHES * B)])
        residual = torch.cat([self.tok.encode(x.to(self.acc.device)).residual for x in images.split(B)])
        return float(1.0 / residual.float().std().clamp_min(1e-6))

    def read_checkpoint(self) -> dict:
        path = self.out / CHECKPOINT_NAME
        state = read_training_state(path)
        if state["preset"] != self.cfg.preset:
            raise RuntimeError(f"checkpoint {path} was trained with preset {state['preset']!r}; "
                               "use a new --out-dir or the same --preset")
        return state

    def save_checkpoint(self) -> None:
        if not self.acc.is_main_process:
            return
        state = {"step": self.step, "model": self.acc.unwrap_model(self.model).state_dict(),
                 "ema": self.ema.state_dict(), "opt": self.opt.state_dict(), "history": self.history,
                 "preset": self.cfg.preset, "residual_scale": self.pipe.head.config.residual_scale,
                 "train_config": dataclasses.asdict(self.cfg)}
        atomic_write(self.out / CHECKPOINT_NAME, lambda tmp: torch.save(state, tmp))

    # ------------------------------------------------------------------ one step
    def loss(self, images: torch.Tensor, captions: list[str], g: torch.Generator) -> dict[str, torch.Tensor]:
        cfg, model = self.cfg, self.acc.unwrap_model(self.model)
        ar, head = model["transformer"], model["head"]
        with torch.no_grad():
            codes = self.tok.encode(images)
            x_BLC = self.tok.quantizer.teacher_forcing_inputs(codes.indices)
            drop = torch.rand(len(captions), generator=g) < cfg.cfg_drop
            text, mask = self.text(["" if d else c for c, d in zip(captions, drop.tolist(), strict=False)])
        logits_BLV, h_BLD = ar(text, mask, x_BLC)
        target_BL = torch.cat([i.flatten(1) for i in codes.indices], dim=1)
        ce = F.cross_entropy(logits_BLV.flatten(0, 1).float(), target_BL.flatten())
        l = codes.indices[-1][0].numel()
        last_codes = self.tok.quantizer.lookup(codes.indices[-1]).flatten(2).transpose(1, 2)  # (B, l, C)
        z = ar.diffusion_condition(h_BLD[:, -l:], last_codes).flatten(0, 1)
        x0 = (codes.residual.flatten(2).transpose(1, 2) * head.config.residual_scale).flatten(0, 1)
        keep = torch.randperm(len(z), generator=g)[: max(1, round(cfg.head_token_ratio * len(z)))]
        diff = self.diffusion.training_loss(head, x0[keep], z[keep], g, head.config.batch_mul)
        acc = (logits_BLV.argmax(-1) == target_BL).float().mean()
        return {"loss": ce + cfg.diffusion_weight * diff, "ce": ce, "diffusion": diff, "token_acc": acc}

    @torch.no_grad()
    def update_ema(self) -> None:
        model = self.acc.unwrap_model(self.model)
        for e, p in zip(self.ema.parameters(), model.parameters(), strict=False):
            e.lerp_(p.detach(), 1 - self.cfg.ema_decay)

    def ema_pipeline(self) -> HARTPipeline:
        pipe = copy.copy(self.pipe)
        pipe.transformer, pipe.head = self.ema["transformer"].eval(), self.ema["head"].eval()
        return pipe

    def save_samples(self) -> Path:
        images = self.ema_pipeline()(list(self.cfg.sample_prompts), seed=0, progress=False).images
        grid = image_grid(images, len(images))
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        return path

    # ------------------------------------------------------------------ loop
    def run(self, until: int | None = None) -> Path | None:
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.acc.is_main_process:
            save_json(self.out / "train_config.json", dataclasses.asdict(cfg))
        sampler = StepBatches(cfg.batch_size, self.step * cfg.grad_accum, self.acc.process_index,
                              self.acc.num_processes)
        batches = iter(torch.utils.data.DataLoader(self.data, batch_sampler=sampler, collate_fn=collate,
                                                   num_workers=cfg.num_workers))
        bar = tqdm(total=cfg.steps, initial=self.step, desc="hart", disable=not self.acc.is_main_process)
        t0, seen = time.perf_counter(), 0
        while self.step < stop:
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
            for group in self.opt.param_groups:
                group["lr"] = lr_at(self.step, cfg)
            for _ in range(cfg.grad_accum):
                images, captions = next(batches)
                with self.acc.accumulate(self.model), self.acc.autocast():
                    logs = self.loss(images.to(self.acc.device), captions, g)
                    self.acc.backward(logs["loss"])
                    if self.acc.sync_gradients and cfg.grad_clip > 0:
                        self.acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    self.opt.step()
                    self.opt.zero_grad(set_to_none=True)
                seen += len(captions) * self.acc.num_processes
            self.update_ema()
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == stop:
                row = {k: round(v.item(), 5) for k, v in logs.items()}
                row.update(step=self.step, lr=lr_at(self.step - 1, cfg), img_s=seen / (time.perf_counter() - t0))
                self.history.append(row)
                bar.set_postfix(ce=f"{row['ce']:.3f}", diff=f"{row['diffusion']:.3f}", img_s=f"{row['img_s']:.1f}")
                if self.acc.is_main_process:
                    with open(self.out / "log.jsonl", "a") as fh:
                        fh.write(json.dumps(row) + "\n")
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
            self.ema_pipeline().save_pretrained(final)
        return final


def train_hart(cfg: HARTTrainConfig, resume: bool = False) -> Path | None:
    """Train transformer + head; returns the final pipeline directory."""
    return HARTTrainer(cfg, resume=resume).run()
