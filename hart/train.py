"""Stage-2 training: transformer + residual diffusion head on a frozen tokenizer and text encoder.

Loss (HART Sec. 3.3): cross-entropy on the discrete tokens of all scales + the diffusion loss of
the head on the final-scale residual tokens (scaled by 1 / std of residuals measured on the first
batches, stored in the head's config), the head seeing a random ``head_token_ratio`` of each
image's final-scale tokens, each repeated ``batch_mul`` times (MAR). Captions are dropped to the
empty prompt with probability ``cfg_drop`` (10%, drawn uniformly: HART's ``randn < 0.1`` dropped
~54%).

One loop from one CPU to many GPUs and nodes through ``accelerate``: the whole loss is the forward
of one module (``HARTLossModel``) that accelerate wraps (DDP), so gradients are averaged over
processes and every process holds the same weights after every step. The randomness of a sample
(caption dropout, which tokens the head sees, diffusion t and noise) is a function of (seed, the
sample's stream index), so a run with P processes of batch B draws exactly what one process of
batch P B draws, and a resumed run continues exactly. Mixed precision, gradient accumulation, EMA,
atomic checkpoints without pickle (``hart.training.state``), a guard against non-finite steps. The
final directory is a ``HARTPipeline.save_pretrained`` of the EMA weights.

Shapes: B batch, L tokens over all scales, l tokens of the final scale, n of them seen by the head,
V vocab, C channels, D width.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hart.data import captioned_stream
from hart.diffusion import GaussianDiffusion
from hart.pipeline import PIPELINE_PRESETS, HARTPipeline
from hart.text_encoder import TextCache
from hart.token_cache import TokenCache
from hart.training.digest import state_digest
from hart.training.distributed import (
    check_resume_layout,
    say,
)
from hart.training.loop import (
    check_resume_config,
    check_start_unchanged,
    sample_generator,
)
from hart.training.schedule import check_run_lengths
from hart.training.state import STATE_NAME, load_training_state
from hart.training.trainer import StepTrainer
from tokenizer.data.images import image_grid
from tokenizer.hybrid import HybridTokenizer

SCALE_BATCHES = 4  # batches measured to set the residual scale


@dataclass(frozen=True)
class HARTTrainConfig:
    out_dir: str
    data: str = "shapes"
    preset: str = "cpu-64"
    tokenizer: str = ""  # shipped name or directory of a trained tokenizer ("" = the preset's, random)
    init_from: str | None = None  # a saved pipeline (shipped name or directory) to continue training from
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
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step)); runs before this key had none
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
    max_skipped_steps: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "sample_prompts", tuple(self.sample_prompts))
        if self.preset not in PIPELINE_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(PIPELINE_PRESETS)}")
        check_run_lengths(self)
        if not 0 <= self.cfg_drop < 1 or not 0 < self.head_token_ratio <= 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("cfg_drop must lie in [0, 1), head_token_ratio in (0, 1], ema_decay in [0, 1)")
        if self.max_skipped_steps < 0:
            raise ValueError(f"max_skipped_steps must be >= 0, got {self.max_skipped_steps}")


class HARTLossModel(nn.Module):
    """Transformer + head whose forward is the training loss: what accelerate wraps for DDP."""

    def __init__(self, transformer: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.transformer, self.head = transformer, head

    def forward(self, text_BTd: torch.Tensor, mask_BT: torch.Tensor, x_BLC: torch.Tensor, target_BL: torch.Tensor,
                last_BlC: torch.Tensor, x0_BlC: torch.Tensor, keep_Bn: torch.Tensor, t_N: torch.Tensor,
                noise_NC: torch.Tensor, diffusion: GaussianDiffusion) -> dict[str, torch.Tensor]:
        """Cross-entropy of all scales, diffusion loss of the kept final-scale tokens, token accuracy.

        x0_BlC is the scaled residual; t_N (batch_mul B n,) and noise_NC are drawn per sample.
        """
        logits_BLV, h_BLD = self.transformer(text_BTd, mask_BT, x_BLC)
        ce = F.cross_entropy(logits_BLV.flatten(0, 1).float(), target_BL.flatten())
        l = last_BlC.shape[1]
        z_BlD = self.transformer.diffusion_condition(h_BLD[:, -l:], last_BlC)

        def kept(x_Bld: torch.Tensor) -> torch.Tensor:  # (B n, d), sample-major
            return torch.gather(x_Bld, 1, keep_Bn[..., None].expand(-1, -1, x_Bld.shape[-1])).flatten(0, 1)

        diff = diffusion.training_loss(self.head, kept(x0_BlC), kept(z_BlD), batch_mul=self.head.config.batch_mul,
                                       t=t_N, noise=noise_NC)
        acc = (logits_BLV.argmax(-1) == target_BL).float().mean()
        return {"ce": ce, "diffusion": diff, "token_acc": acc}


class HARTTrainer(StepTrainer):
    KIND, DESC = "hart", "hart"

    def __init__(self, cfg: HARTTrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.begin(cfg, resume, overwrite, "train")
        self.pipe = HARTPipeline.from_preset(cfg.preset, seed=cfg.seed)
        if cfg.tokenizer:
            self.pipe.tokenizer = HybridTokenizer.from_pretrained(cfg.tokenizer)
        self.tok = self.pipe.tokenizer.requires_grad_(False).eval().to(self.acc.device)
        self.tokenizer_digest = state_digest(self.tok.state_dict())
        self.pipe.text_encoder.model.to(self.acc.device)
        self.text = TextCache(self.pipe.text_encoder)  # captions repeat: encode each once
        self.data = captioned_stream(cfg.data, self.tok.config.image_size, cfg.seed)
        self.token_cache = TokenCache(self.tok, self.data) if TokenCache.applies_to(self.data) else None
        self.diffusion = GaussianDiffusion(self.pipe.head.config.train_steps)
        init = self.init_pipeline(cfg.init_from) if cfg.init_from else None
        init_state = init_weights(init) if init else None
        self.init_digest = state_digest(init_state) if init else None
        state = self.read_checkpoint() if resume and (self.out / STATE_NAME).is_file() else None
        if state:
            scale = state["residual_scale"]
        else:
            scale = init.head.config.residual_scale if init else self.measure_residual_scale()
        self.pipe.head.config = dataclasses.replace(self.pipe.head.config, residual_scale=scale)
        model = HARTLossModel(self.pipe.transformer, self.pipe.head).train()
        self.ema = copy.deepcopy(model).requires_grad_(False)
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        if init and not state:
            try:
                model.load_state_dict(init_state)
            except RuntimeError as e:
                raise RuntimeError(f"init_from {cfg.init_from} does not match preset {cfg.preset}: {e}") from e
            self.ema.load_state_dict(model.state_dict())
        self.finish_setup(model, opt, state)

    # ------------------------------------------------------------------ setup
    def init_pipeline(self, source: str) -> HARTPipeline:
        """The saved pipeline a run continues from; it must use this run's tokenizer."""
        init = HARTPipeline.from_pretrained(source)
        if state_digest(init.tokenizer.state_dict()) != self.tokenizer_digest:
            raise RuntimeError(f"init_from {source} was trained with another tokenizer than "
                               f"{self.cfg.tokenizer or 'the preset'}; set --tokenizer to the one it was trained with")
        return init

    @torch.no_grad()
    def measure_residual_scale(self) -> float:
        """1 / std of the tokenizer's residuals over a few batches (HART uses a fixed 1 / 0.6)."""
        B = self.cfg.batch_size
        images = torch.stack([self.data[10**9 + i][0] for i in range(SCALE_BATCHES * B)])
        residual = torch.cat([self.tok.encode(x.to(self.acc.device)).residual for x in images.split(B)])
        return float(1.0 / residual.float().std().clamp_min(1e-6))

    def read_checkpoint(self) -> dict:
        path = self.out / STATE_NAME
        state = load_training_state(path)
        if state.get("kind") != "hart":
            raise RuntimeError(f"{path} is not a checkpoint of `hart train` (kind {state.get('kind')!r}); "
                               "use the trainer that wrote it or a new --out-dir")
        if state["preset"] != self.cfg.preset:
            raise RuntimeError(f"checkpoint {path} was trained with preset {state['preset']!r}; "
                               "use a new --out-dir or the same --preset")
        check_start_unchanged(state["init_digest"], self.init_digest, self.cfg.init_from, path)
        if state["tokenizer_digest"] != self.tokenizer_digest:
            raise RuntimeError(
                f"checkpoint {path} was trained on another tokenizer (weights digest {state['tokenizer_digest']}, "
                f"now {self.tokenizer_digest} from {self.cfg.tokenizer or 'the preset'}): the tokenizer stage was "
                "retrained since. Start this stage afresh in a new --out-dir (or delete the checkpoint)")
        check_resume_config(state["train_config"], dataclasses.asdict(self.cfg), path)
        say(self.acc, "train", check_resume_layout(state["layout"], self.layout, path))
        return state

    def checkpoint_extras(self) -> dict:
        return {"preset": self.cfg.preset, "residual_scale": self.pipe.head.config.residual_scale,
                "tokenizer_digest": self.tokenizer_digest, "init_digest": self.init_digest}

    # ------------------------------------------------------------------ one step
    def sample_draws(self, items: list[int], l: int, C: int):
        """Per-sample randomness: caption dropout (B,), kept head tokens (B, n), t and noise (batch_mul B n, ...)."""
        cfg, bm, T = self.cfg, self.pipe.head.config.batch_mul, self.diffusion.num_steps
        n = max(1, round(cfg.head_token_ratio * l))
        drop, keep, t, noise = [], [], [], []
        for i in items:
            g = sample_generator(cfg.seed, i)
            drop.append(bool(torch.rand((), generator=g) < cfg.cfg_drop))
            keep.append(torch.rand(l, generator=g).argsort()[:n])
            t.append(torch.randint(T, (bm, n), generator=g))
            noise.append(torch.randn(bm, n, C, generator=g))
        # (B, bm, n) -> (bm, B, n): the order of x0.repeat(batch_mul, 1) over sample-major tokens
        t_N = torch.stack(t).transpose(0, 1).flatten()
        noise_NC = torch.stack(noise).transpose(0, 1).flatten(0, 2)
        return drop, torch.stack(keep), t_N, noise_NC

    def loss(self, items: list[int], images: torch.Tensor, captions: list[str]) -> dict[str, torch.Tensor]:
        head_cfg = self.pipe.head.config
        with torch.no_grad():
            codes = self.token_cache.encode(items, images) if self.token_cache else self.tok.encode(images)
            x_BLC = self.tok.quantizer.teacher_forcing_inputs(codes.indices)
            target_BL = torch.cat([i.flatten(1) for i in codes.indices], dim=1)
            last_BlC = self.tok.quantizer.lookup(codes.indices[-1]).flatten(2).transpose(1, 2)
            x0_BlC = codes.residual.flatten(2).transpose(1, 2) * head_cfg.residual_scale
            drop, keep_Bn, t_N, noise_NC = self.sample_draws(items, last_BlC.shape[1], last_BlC.shape[2])
            text, mask = self.text(["" if d else c for c, d in zip(captions, drop, strict=True)])
        dev = self.acc.device
        return self.model(text, mask, x_BLC, target_BL, last_BlC, x0_BlC, keep_Bn.to(dev), t_N.to(dev),
                          noise_NC.to(dev), self.diffusion)

    def ema_pipeline(self) -> HARTPipeline:
        pipe = copy.copy(self.pipe)
        pipe.transformer, pipe.head = self.ema.transformer.eval(), self.ema.head.eval()
        return pipe

    def save_samples(self) -> Path:
        images = self.ema_pipeline()(list(self.cfg.sample_prompts), seed=0, progress=False).images
        grid = image_grid(images, len(images))
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        return path

    # ------------------------------------------------------------------ loop hooks (StepTrainer)
    def objective(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        return logs["ce"] + self.cfg.diffusion_weight * logs["diffusion"]

    def guard_total(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        return logs["ce"] + logs["diffusion"]

    def postfix(self, row: dict) -> dict[str, str]:
        return {"ce": f"{row['ce']:.3f}", "diff": f"{row['diffusion']:.3f}", "img_s": f"{row['img_s']:.1f}"}

    def final_pipeline(self) -> HARTPipeline:
        return self.ema_pipeline()


def init_weights(pipe: HARTPipeline) -> dict[str, torch.Tensor]:
    """A pipeline's transformer and head weights under ``HARTLossModel``'s names."""
    return {**{f"transformer.{k}": v for k, v in pipe.transformer.state_dict().items()},
            **{f"head.{k}": v for k, v in pipe.head.state_dict().items()}}


def train_hart(cfg: HARTTrainConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Train transformer + head; returns the final pipeline directory."""
    return HARTTrainer(cfg, resume=resume, overwrite=overwrite).run()
