"""Training loop of the hybrid tokenizer (docs/design.md sections 2 and 8).

Each step reconstructs the batch through one decoder path picked with probability 0.5: the
continuous path decode(f) or the discrete path decode(f_hat) (HART Sec. 3.1, alternating training),
and adds the codebook + commitment loss of the multi-scale quantizer. Codebook usage per scale
(perplexity, dead codes) is logged and dead codes are restarted from encoder outputs. An optional
patch-GAN term joins after ``gan_start`` steps.

Staged training: ``init_from`` starts from earlier weights, ``pca_init_images`` starts a
``patch_skip`` model as a patch PCA (tokenizer.pca_init), and ``freeze`` leaves parts untrained,
e.g. HART's decoder fine-tune freezes the encoder so that the latent f stays fixed (photo-f8 uses
all three: configs/tokenizer-photo-f8*.yaml).

Exact resume: the data, the path choice and the dead-code restarts are functions of (seed, step),
and the checkpoint holds model, optimizer and usage state, so a run resumed at step s continues
exactly as the uninterrupted run would have.

Data-parallel (``accelerate launch``): gradients are averaged by the wrapped model; codebook usage
is summed over processes every step and a restart draws its replacement vectors from the encoder
outputs of all processes (gathered in rank order) with the same (seed, step) generator, so every
process makes the same restart and the codebooks never drift apart. A run of P processes of batch B
trains as one process of batch P B would (same items per step, same restarts).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from hart.training.digest import state_digest
from hart.training.distributed import (
    check_resume_layout,
    current_layout,
    gather_rows,
    reduce_logs,
    refuse_unsupported_distribution,
    say,
    single_process_launch_note,
    slow_bf16_note,
    sum_over_processes,
)
from hart.training.loop import (
    NonFiniteGuard,
    RunLog,
    check_finite_weights,
    check_resume_config,
    check_start_unchanged,
    guarded_step,
    run_owned,
)
from hart.training.rundir import RunDirectory
from hart.training.schedule import check_run_lengths, lr_at
from hart.training.state import (
    LEGACY_NAME,
    STATE_NAME,
    TrainingStateError,
    load_training_state,
    refuse_legacy_checkpoint,
    save_training_state,
)
from tokenizer.checkpoint import save_json
from tokenizer.config import TokenizerConfig, get_preset
from tokenizer.data.images import image_grid, to_pil
from tokenizer.data.sources import StepBatches, image_stream
from tokenizer.hybrid import HybridTokenizer
from tokenizer.losses import PatchDiscriminator, hinge_d_loss, hinge_g_loss, psnr, reconstruction_loss
from tokenizer.pca_init import patch_pca_init_

SAMPLE_IMAGES = 8
SAMPLE_OFFSET = 10**9  # stream items far past any training batch serve as fixed previews
PCA_OFFSET = 2 * 10**9  # and these as the images of the patch-PCA initialisation
PARTS = ("encoder", "quant_conv", "quantizer", "post_quant_conv", "decoder")  # what ``freeze`` may name


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """Everything a tokenizer training run depends on; saved as ``train_config.json``."""

    out_dir: str
    data: tuple[str, ...] = ("shapes",)
    model: str = "cpu-f8-64"  # preset name or path of a TokenizerConfig JSON
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 4e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    vq_weight: float = 1.0
    discrete_prob: float = 0.5
    gan_weight: float = 0.0
    gan_start: int = 0
    restart_every: int = 100
    max_zoom_out: float = 8.0
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 250
    seed: int = 0
    mixed_precision: str = "no"
    num_workers: int = 0
    init_from: str | None = None
    pca_init_images: int = 0
    freeze: tuple[str, ...] = ()
    max_skipped_steps: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", tuple(self.data))
        object.__setattr__(self, "betas", tuple(self.betas))
        check_run_lengths(self)
        if not 0.0 <= self.discrete_prob <= 1.0:
            raise ValueError(f"discrete_prob must lie in [0, 1], got {self.discrete_prob}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        unknown = sorted(set(self.freeze) - set(PARTS))
        if unknown:
            raise ValueError(f"freeze: unknown parts {unknown}; parts are {list(PARTS)}")
        if set(self.freeze) == set(PARTS):
            raise ValueError("freeze lists every part of the tokenizer: nothing would train")
        if self.pca_init_images < 0:
            raise ValueError(f"pca_init_images must be >= 0, got {self.pca_init_images}")
        if self.max_skipped_steps < 0:
            raise ValueError(f"max_skipped_steps must be >= 0, got {self.max_skipped_steps}")
        if self.pca_init_images and self.init_from:
            raise ValueError("use either init_from (start from trained weights) or pca_init_images, not both")

    def model_config(self) -> TokenizerConfig:
        path = Path(self.model)
        if path.suffix == ".json" and path.is_file():
            return TokenizerConfig(**json.loads(path.read_text()))
        return get_preset(self.model)


def codebook_stats(counts_KV: torch.Tensor) -> dict[str, float]:
    """Perplexity per scale and dead codes overall from usage counts (K, V)."""
    probs = counts_KV / counts_KV.sum(1, keepdim=True).clamp_min(1)
    perplexity = torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum(1))
    stats = {f"ppl{k}": float(p) for k, p in enumerate(perplexity)}
    stats["dead"] = int((counts_KV.sum(0) == 0).sum())
    return stats


class TokenizerTrainer:
    """Holds the state of one run; ``run()`` trains to ``cfg.steps`` from wherever it stands."""

    def __init__(self, cfg: TokenizerTrainConfig, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
        refuse_unsupported_distribution(self.acc)
        self.rundir = RunDirectory(self.out, resume, overwrite) if self.acc.is_main_process else None
        say(self.acc, "train-tokenizer", single_process_launch_note(self.acc))
        say(self.acc, "train-tokenizer", slow_bf16_note(self.acc))
        self.layout = current_layout(self.acc, cfg)
        torch.manual_seed(cfg.seed)
        self.model_cfg = cfg.model_config()
        self.model = HybridTokenizer(self.model_cfg).to(memory_format=torch.channels_last)
        self.data = image_stream(cfg.data, self.model_cfg.image_size, cfg.seed, cfg.max_zoom_out)
        if resume:
            refuse_legacy_checkpoint(self.out)
        fresh = not (resume and (self.out / STATE_NAME).is_file())
        self.init_digest = self.init_weights(cfg.init_from, load=fresh) if cfg.init_from else None
        if fresh and cfg.pca_init_images:
            images = torch.stack([self.data[PCA_OFFSET + i] for i in range(cfg.pca_init_images)])
            self.pca_kept = patch_pca_init_(self.model, images)
        for part in cfg.freeze:  # e.g. HART's decoder fine-tune freezes encoder and quant_conv
            getattr(self.model, part).requires_grad_(False)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
        # Fewer strided layers for small images, so the last 4x4 convs still fit (3 from 128 px).
        n_layers = max(1, min(3, self.model_cfg.image_size.bit_length() - 5))
        self.disc = PatchDiscriminator(n_layers=n_layers) if cfg.gan_weight > 0 else None
        self.disc_opt = (torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=cfg.betas)
                         if self.disc is not None else None)
        K, V = self.model_cfg.num_scales, self.model_cfg.vocab_size
        self.usage = torch.zeros(K, V)
        self.step = 0
        self.history: list[dict] = []
        if not fresh:
            self.load_checkpoint()
        self.model, self.opt = self.acc.prepare(self.model, self.opt)
        if self.disc is not None:
            self.disc, self.disc_opt = self.acc.prepare(self.disc, self.disc_opt)
        self.guard = NonFiniteGuard(cfg.max_skipped_steps, self.out / STATE_NAME)

    # ------------------------------------------------------------------ checkpoints
    def init_weights(self, source: str, load: bool = True) -> str:
        """Start from the weights of a run's checkpoint (or its run directory) or a saved tokenizer.

        Returns the digest of those weights; a resumed stage compares it with the one recorded at
        its start (``load=False``: only the digest, the checkpoint's own weights are used).
        """
        path = Path(source)
        if path.is_dir() and not (path / "config.json").is_file():
            refuse_legacy_checkpoint(path)
            path = path / STATE_NAME
        if path.name == LEGACY_NAME:
            refuse_legacy_checkpoint(path.parent)
        if path.is_file():
            state = load_training_state(path)
            config, weights = state["model_config"], state["model"]
        else:
            loaded = HybridTokenizer.from_pretrained(path)
            config, weights = loaded.config.to_dict(), loaded.state_dict()
        if config != self.model_cfg.to_dict():
            raise RuntimeError(f"init_from {path} holds another model configuration than --model {self.cfg.model}")
        if load:
            self.model.load_state_dict(weights)
        return state_digest(weights)

    def state(self) -> dict:
        unwrap = self.acc.unwrap_model
        return {
            "kind": "tokenizer", "step": self.step, "model": unwrap(self.model).state_dict(),
            "opt": self.opt.state_dict(),
            "disc": unwrap(self.disc).state_dict() if self.disc is not None else None,
            "disc_opt": self.disc_opt.state_dict() if self.disc_opt is not None else None,
            "usage": self.usage, "history": self.history, "init_digest": self.init_digest,
            "layout": self.layout.to_dict(), "next_item": self.step * self.layout.global_batch,
            "train_config": dataclasses.asdict(self.cfg), "model_config": self.model_cfg.to_dict(),
        }

    def save_checkpoint(self) -> None:
        """Written by the main process after a barrier; every process resumes from it."""
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            check_finite_weights([("tokenizer", self.acc.unwrap_model(self.model))])
            save_training_state(self.out / STATE_NAME, self.state())
        self.acc.wait_for_everyone()

    def load_checkpoint(self) -> None:
        path = self.out / STATE_NAME
        state = load_training_state(path)
        if state.get("kind") != "tokenizer":
            raise TrainingStateError(f"{path} is not a checkpoint of `hart train-tokenizer` "
                                     f"(kind {state.get('kind')!r}); use a new --out-dir")
        if state["model_config"] != self.model_cfg.to_dict():
            raise RuntimeError(f"checkpoint {path} was trained with another model configuration; "
                               "use a new --out-dir or the same --model")
        check_resume_config(state["train_config"], dataclasses.asdict(self.cfg), path)
        check_start_unchanged(state["init_digest"], self.init_digest, self.cfg.init_from, path)
        say(self.acc, "train-tokenizer", check_resume_layout(state["layout"], self.layout, path))
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.disc is not None and state["disc"] is not None:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])
        self.usage, self.step, self.history = state["usage"], state["step"], state["history"]

    # ------------------------------------------------------------------ one step
    def loader(self):
        sampler = StepBatches(self.cfg.batch_size, self.step * self.cfg.grad_accum,
                              self.acc.process_index, self.acc.num_processes)
        return torch.utils.data.DataLoader(self.data, batch_sampler=sampler, num_workers=self.cfg.num_workers)

    def train_step(self, images: torch.Tensor, use_residual: bool) -> dict:
        cfg = self.cfg
        with self.acc.accumulate(self.model):
            out = self.model(images, use_residual=use_residual)
            rec = reconstruction_loss(out.recon, images, cfg.l1_weight, cfg.l2_weight)
            loss = rec + cfg.vq_weight * out.vq_loss
            gan_on = self.disc is not None and self.step >= cfg.gan_start
            if gan_on:
                loss = loss + cfg.gan_weight * hinge_g_loss(self.disc(out.recon))
            self.acc.backward(loss)
            if self.acc.sync_gradients:
                guarded_step(self.acc, self.model, self.opt, self.guard, self.step, loss,
                             {"loss": loss, "rec": rec, "vq": out.vq_loss}, cfg.grad_clip)
            if gan_on:  # the generator's loss left gradients on the discriminator: drop them first
                self.disc_opt.zero_grad(set_to_none=True)
                d_loss = hinge_d_loss(self.disc(images), self.disc(out.recon.detach()))
                self.acc.backward(d_loss)
                self.disc_opt.step()
                self.disc_opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # usage over all processes, so that restarts agree everywhere
            counts = torch.stack([torch.bincount(idx.flatten(), minlength=self.usage.shape[1])
                                  for idx in out.indices]).float()
            self.usage += sum_over_processes(self.acc, counts).cpu()
        return {"loss": loss.detach(), "rec": rec.detach(), "vq": out.vq_loss.detach(),
                "psnr": psnr(out.recon.detach(), images).mean(), "f": out.f.detach()}

    def restart_dead_codes(self, fs: list[torch.Tensor], generator: torch.Generator) -> int:
        """Replace codes unused since the last restart by random encoder output vectors.

        ``fs`` are this process's latents (B, C, h, w) of the step's micro-batches; the candidates are
        those of the whole global batch, in stream order (micro-batch, then process), and every
        process draws the same picks from the same generator.
        """
        dead = (self.usage.sum(0) == 0).nonzero().flatten()
        if len(dead):
            f_all = torch.cat([gather_rows(self.acc, f.float()) for f in fs])
            vectors = f_all.permute(0, 2, 3, 1).reshape(-1, f_all.shape[1]).cpu()
            pick = torch.randint(len(vectors), (len(dead),), generator=generator)
            self.acc.unwrap_model(self.model).quantizer.restart_codes(dead, vectors[pick])
        self.usage.zero_()
        return len(dead)

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def save_samples(self) -> Path:
        """Grid of fixed images: rows original, discrete-only and hybrid reconstructions."""
        model = self.acc.unwrap_model(self.model).eval()
        images = torch.stack([self.data[SAMPLE_OFFSET + i] for i in range(SAMPLE_IMAGES)])
        images = images.to(self.acc.device)
        codes = model.encode(images)
        rows = [images, model.decode(codes, use_residual=False), model.decode(codes)]
        model.train()
        grid = image_grid([to_pil(img) for row in rows for img in row], cols=SAMPLE_IMAGES)
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        return path

    # ------------------------------------------------------------------ loop
    def run(self, until: int | None = None) -> Path | None:
        """Train to ``cfg.steps`` (or stop early at step ``until`` with a checkpoint).

        Returns the ``final`` model directory, or None when stopped early. Holds the run directory's
        lock meanwhile; Ctrl-C writes a checkpoint first (single process) and re-raises.
        """
        return run_owned(self, until, self.acc.num_processes)

    def train(self, until: int | None = None) -> Path | None:
        """The loop of ``run``."""
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        log = RunLog(self.out / "log.jsonl", self.acc.is_main_process)
        log.restart(self.history)
        if self.acc.is_main_process:
            save_json(self.out / "train_config.json", dataclasses.asdict(cfg))
        batches = iter(self.loader())
        self.bar = bar = tqdm(total=cfg.steps, initial=self.step, desc="tokenizer",
                              disable=not self.acc.is_main_process)
        t0, seen = time.perf_counter(), 0
        self.model.train()
        while self.step < stop:
            rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
            use_residual = bool(torch.rand((), generator=rng) >= cfg.discrete_prob)
            for group in self.opt.param_groups:
                group["lr"] = lr_at(self.step, cfg)
            fs = []
            for _ in range(cfg.grad_accum):
                images = next(batches).to(self.acc.device, memory_format=torch.channels_last)
                logs = self.train_step(images, use_residual)
                fs.append(logs.pop("f"))
                seen += images.shape[0] * self.acc.num_processes
            self.step += 1
            if self.step % cfg.log_every == 0 or self.step == stop:
                row = {k: round(v, 6) for k, v in reduce_logs(self.acc, logs).items()}
                row.update(path="hybrid" if use_residual else "discrete", step=self.step,
                           lr=lr_at(self.step - 1, cfg), img_s=seen / (time.perf_counter() - t0),
                           **codebook_stats(self.usage))
                self.history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", psnr=f"{row['psnr']:.2f}", path=row["path"],
                                img_s=f"{row['img_s']:.1f}")
                log.append(row)
            bar.update(1)
            if cfg.restart_every and self.step % cfg.restart_every == 0:
                self.restart_dead_codes(fs, rng)
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
            self.acc.unwrap_model(self.model).save_pretrained(final)
        self.acc.wait_for_everyone()
        return final


def train_tokenizer(cfg: TokenizerTrainConfig, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Train a tokenizer; returns the ``save_pretrained`` directory of the final weights."""
    return TokenizerTrainer(cfg, resume=resume, overwrite=overwrite).run()
