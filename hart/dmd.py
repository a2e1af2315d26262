"""Distribution matching distillation (DMD, DMD2) of an epsilon-predicting denoiser into one step.

Written from the papers: DMD (Yin et al., CVPR 2024, arXiv 2311.18828) and DMD2 (Yin et al.,
NeurIPS 2024, arXiv 2405.14867). Generic over any ``model(x_t, t, cond) -> eps`` on hart's
``GaussianDiffusion``: the residual head (rows (N, C), cond z (N, D)) or an image denoiser
((B, C, H, W), any cond or None). "Per sample" always means: along the first dim.

Three networks (DMD Sec. 3): the frozen teacher gives the real score, with classifier-free
guidance; the generator G and the fake score both start as copies of the teacher (``init_students``).
G follows the gradient of KL(p_G || p_real) (DMD Sec. 3.2, Eq. 7-8); the fake score keeps tracking
p_G with the ordinary denoising loss; DMD adds a regression onto teacher outputs of fixed noises
(Sec. 3.3), which DMD2 drops, updating the fake score several times per G step instead
(its two time-scale update rule). DMD2's GAN loss and multi-step generator are not here.

The generator's timestep. DMD evaluates G at the teacher's last timestep T-1, where its denoiser
gives x0 directly. An epsilon predictor gives x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab), which
multiplies the error in eps by 1 / sqrt(ab). On ``GaussianDiffusion(1000)`` the clipped final
beta (0.999) takes ab from 2.43e-6 at T-2 to 2.43e-9 at T-1: a factor 1 / sqrt(ab) = 20291.
Measured on the shipped hart-shapes-64 head (residuals of unit std, conditions of a real
generation), eps - x_T has rms 0.04 there and x0 has mean |x0| 643, 99.7 % of entries beyond the
sampler's clip of 5; clipping would make them constant, with zero gradient. So G runs at
t_gen = round(0.98 T) = 980 (``GENERATOR_T_FRAC``, the top of DMD's score range): ab = 8.8e-4,
factor 33.8, mean |x0| 0.94, 0.1 % beyond 5, and noise is still 1 - ab = 99.91 % of x_980's
variance (unit-variance data). x0 is the teacher's own formula there, and
``one_step(student, ...)`` with the same t_gen is the distilled sampler; ``clip_x0`` is optional.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hart.diffusion import GaussianDiffusion, respaced_timesteps
from hart.training.loop import sample_generator
from tokenizer.config_types import checked_fields

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]  # (x_t, t, cond) -> eps
X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t (N,)) -> x0 estimate, x_t's shape

GENERATOR_T_FRAC = 0.98  # G's timestep as a fraction of T (module docstring: why not T - 1)
WEIGHT_FLOOR = 1e-6  # lower bound of DMD's per-sample normaliser mean |x - x0_real| (data units)


@dataclass(frozen=True)
class DMDConfig:
    """Settings of a distillation run. Defaults are DMD2's (no regression, 5 fake steps per G step).

    DMD: ``regression_weight`` > 0 (with ``regression_pairs``) and 1 fake step per G step.
    The learning rates are of the order used to fine-tune full-size teachers; small heads may take more.
    """

    guidance_scale: float = 1.0  # real score's CFG scale, >= 1 (1 = no guidance); fake score unguided
    t_min_frac: float = 0.02  # DMD Sec. 3.2: t ~ U[0.02 T, 0.98 T] (after DreamFusion)
    t_max_frac: float = 0.98
    generator_t_frac: float = GENERATOR_T_FRAC
    regression_weight: float = 0.0  # 0 = DMD2 (no regression loss)
    fake_steps_per_generator_step: int = 5  # DMD2's two time-scale update rule; DMD: 1
    generator_lr: float = 2e-6
    fake_lr: float = 2e-6
    seed: int = 0  # randomness of step k: hart.training.loop.sample_generator(seed, k)

    def __post_init__(self) -> None:
        for name, value in checked_fields(DMDConfig, dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)  # ints stay ints, floats are finite floats
        if self.guidance_scale < 1:
            raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {self.guidance_scale}")
        for key in ("t_min_frac", "t_max_frac"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key} must lie in [0, 1], got {getattr(self, key)}")
        if self.t_min_frac > self.t_max_frac:
            raise ValueError(f"t_min_frac ({self.t_min_frac}) must not exceed t_max_frac ({self.t_max_frac})")
        if not 0 < self.generator_t_frac <= 1:
            raise ValueError(f"generator_t_frac must lie in (0, 1], got {self.generator_t_frac}")
        if self.regression_weight < 0:
            raise ValueError(f"regression_weight must be >= 0, got {self.regression_weight}")
        if self.fake_steps_per_generator_step < 1:
            raise ValueError(f"fake_steps_per_generator_step must be >= 1, got {self.fake_steps_per_generator_step}")
        for key in ("generator_lr", "fake_lr"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def timestep_range(cfg: DMDConfig, num_steps: int) -> tuple[int, int]:
    """Integer [t_min, t_max] (both included) of the distribution-matching scores, inside [0, T-1]."""
    t_max = min(round(cfg.t_max_frac * num_steps), num_steps - 1)
    return min(round(cfg.t_min_frac * num_steps), t_max), t_max


def generator_timestep(num_steps: int, frac: float = GENERATOR_T_FRAC) -> int:
    """G's timestep round(frac T), inside [0, T-1] (module docstring)."""
    return min(round(frac * num_steps), num_steps - 1)


def _per_sample(diffusion: GaussianDiffusion, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t (N,) shaped (N, 1, ...) to broadcast over x's non-batch dims, in x's dtype."""
    ab = diffusion.alpha_bar.to(x.device)[t.to(x.device)].to(x.dtype)
    return ab.view(-1, *(1,) * (x.ndim - 1))


def _noisy(diffusion: GaussianDiffusion, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (DDPM Eq. 4) for samples of any shape."""
    ab = _per_sample(diffusion, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(model: Denoiser, diffusion: GaussianDiffusion, x_t: torch.Tensor, t: torch.Tensor,
               cond: torch.Tensor | None, guidance_scale: float = 1.0,
               null_cond: torch.Tensor | None = None) -> torch.Tensor:
    """x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), x_t's shape; t (N,) integer timesteps.

    With guidance_scale != 1, eps = eps_u + s (eps_c - eps_u) from one batched call on
    [cond; null_cond]; a null_cond with batch 1 is broadcast over the batch.
    """
    if guidance_scale != 1.0:
        if cond is None or null_cond is None:
            raise ValueError("guidance_scale != 1 needs both cond and null_cond")
        if null_cond.shape[0] == 1:
            null_cond = null_cond.expand(cond.shape[0], *null_cond.shape[1:])
        eps_c, eps_u = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null_cond])).chunk(2)
        eps = eps_u + guidance_scale * (eps_c - eps_u)
    else:
        eps = model(x_t, t, cond)
    # fp32 arithmetic: in bf16, sqrt(1 - ab) rounds to 1 near T and 1 / sqrt(ab) magnifies the rounding
    ab = _per_sample(diffusion, t, x_t.float())
    return ((x_t.float() - (1 - ab).sqrt() * eps.float()) / ab.sqrt()).to(x_t.dtype)


def one_step(model: Denoiser, diffusion: GaussianDiffusion, noise_NC: torch.Tensor, cond: torch.Tensor | None,
             t_gen: int | None = None, clip_x0: float | None = None) -> torch.Tensor:
    """The one-step generator: x0 (noise's shape) of pure noise read as x_{t_gen} (default round(0.98 T)).

    ``clip_x0`` clamps the output to [-clip_x0, clip_x0] (inference only: the clamp has no gradient).
    """
    t = generator_timestep(diffusion.num_steps) if t_gen is None else t_gen
    if not 0 <= t < diffusion.num_steps:
        raise ValueError(f"t_gen must lie in [0, {diffusion.num_steps - 1}], got {t}")
    ts = torch.full((noise_NC.shape[0],), t, dtype=torch.long, device=noise_NC.device)
    x0 = predict_x0(model, diffusion, noise_NC, ts, cond)
    return x0 if clip_x0 is None else x0.clamp(-clip_x0, clip_x0)


def distribution_matching_loss(x_gen_NC: torch.Tensor, real_x0_fn: X0Fn, fake_x0_fn: X0Fn,
                               diffusion: GaussianDiffusion, t_min: int, t_max: int,
                               generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Surrogate of KL(p_G || p_real) whose gradient is DMD's (Sec. 3.2, Eq. 7-8); returns (loss, stats).

    Per sample i (first dim; (N, C) rows or (B, C, H, W) images): t_i ~ U{t_min..t_max}, x_t from
    x_gen_i, then grad_i = (x0_fake - x0_real) / mean(|x_gen_i - x0_real|) over all of the sample's
    dims. The score difference s_real - s_fake is sqrt(ab)/(1 - ab) (x0_real - x0_fake); DMD's
    weight (1 - ab)/sqrt(ab) / mean|.| cancels the factor, leaving a step of the data's scale at
    every t. loss = mean over samples of 0.5 ||x_gen_i - sg(x_gen_i - grad_i)||^2, so
    d loss / d x_gen_i = grad_i / N (the batch mean of per-sample gradients).
    """
    if x_gen_NC.ndim < 2:
        raise ValueError(f"x_gen must have a batch dim and sample dims, got shape {tuple(x_gen_NC.shape)}")
    if not 0 <= t_min <= t_max < diffusion.num_steps:
        raise ValueError(f"need 0 <= t_min <= t_max < {diffusion.num_steps}, got [{t_min}, {t_max}]")
    N = x_gen_NC.shape[0]
    t = torch.randint(t_min, t_max + 1, (N,), generator=generator).to(x_gen_NC.device)
    noise = torch.randn(x_gen_NC.shape, generator=generator).to(x_gen_NC)
    with torch.no_grad():  # the scores are targets: no gradient into the teacher or the fake score
        x = x_gen_NC.detach()
        x_t = _noisy(diffusion, x, t, noise)
        x0_real, x0_fake = real_x0_fn(x_t, t), fake_x0_fn(x_t, t)
        dims = tuple(range(1, x.ndim))
        weight = (x - x0_real).abs().mean(dim=dims, keepdim=True).clamp_min(WEIGHT_FLOOR)
        grad = (x0_fake - x0_real) / weight
    loss = 0.5 * (x_gen_NC - (x_gen_NC - grad).detach()).pow(2).flatten(1).sum(1).mean()
    stats = {"dm_loss": loss.item(), "dm_grad_abs": grad.abs().mean().item(), "dm_weight": weight.mean().item()}
    return loss, stats


def fake_score_loss(fake_model: Denoiser, diffusion: GaussianDiffusion, x_gen_detached: torch.Tensor,
                    cond: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Epsilon-MSE of the fake score on G's samples, t ~ U{0..T-1} as the teacher trained (DMD Sec. 3.2)."""
    x0 = x_gen_detached.detach()
    t = torch.randint(diffusion.num_steps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    if x0.ndim == 2 and cond is not None and cond.ndim == 2:  # the head's layout: the trainer's own loss
        return diffusion.training_loss(fake_model, x0, cond, t=t, noise=noise)
    t, noise = t.to(x0.device), noise.to(x0)
    return (fake_model(_noisy(diffusion, x0, t, noise), t, cond) - noise).pow(2).mean()


@torch.no_grad()
def ddim_sample(model: Denoiser, diffusion: GaussianDiffusion, noise: torch.Tensor, cond: torch.Tensor | None,
                steps: int, guidance_scale: float = 1.0, null_cond: torch.Tensor | None = None,
                clip_x0: float | None = None) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, Eq. 12, sigma = 0) over respaced steps: x0, noise's shape.

    A function of the noise alone, as DMD's regression pairs need (Sec. 3.3: a deterministic ODE
    sampler); ``GaussianDiffusion.sample`` draws fresh noise at every step.
    """
    ts = respaced_timesteps(diffusion.num_steps, steps)
    x = noise
    for i in reversed(range(len(ts))):
        t = torch.full((x.shape[0],), ts[i], dtype=torch.long, device=x.device)
        x0 = predict_x0(model, diffusion, x, t, cond, guidance_scale, null_cond)
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
        if i > 0:  # to ts[i - 1] along the eps consistent with the (clipped) x0
            ab, ab_prev = _per_sample(diffusion, t, x), _per_sample(diffusion, torch.full_like(t, ts[i - 1]), x)
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * (x - ab.sqrt() * x0) / (1 - ab).sqrt()
    return x0


@torch.no_grad()
def regression_pairs(teacher_sample_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                     conds: torch.Tensor | None, noise_shape: tuple[int, ...], seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise, teacher_sample_fn(noise, conds)) with noise from ``Generator().manual_seed(seed)`` (DMD Sec. 3.3).

    ``teacher_sample_fn`` should be deterministic in its noise (``ddim_sample``); the same seed then
    gives bit-identical pairs. Noise is drawn on the CPU, then moved to ``conds``'s device.
    """
    noise = torch.randn(noise_shape, generator=torch.Generator().manual_seed(seed))
    if conds is not None:
        noise = noise.to(conds.device)
    return noise, teacher_sample_fn(noise, conds).detach()


def regression_loss(x_gen: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between G's outputs and the teacher's for the same noise.

    DMD uses LPIPS on images (Sec. 3.3); latents and residual tokens have no perceptual metric here.
    """
    return F.mse_loss(x_gen, target)


def init_students(teacher: nn.Module, cfg: DMDConfig
                  ) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    """(G, fake score, Adam of G, Adam of the fake score): both start as copies of the teacher (DMD Sec. 3.1)."""
    teacher.requires_grad_(False)
    gen, fake = copy.deepcopy(teacher).requires_grad_(True), copy.deepcopy(teacher).requires_grad_(True)
    return (gen, fake, torch.optim.Adam(gen.parameters(), lr=cfg.generator_lr),
            torch.optim.Adam(fake.parameters(), lr=cfg.fake_lr))


def dmd_step(generator_model: nn.Module, fake_model: nn.Module, teacher: nn.Module,
             opt_g: torch.optim.Optimizer, opt_f: torch.optim.Optimizer, diffusion: GaussianDiffusion,
             cond: torch.Tensor | None, noise_shape: tuple[int, ...], cfg: DMDConfig, step: int,
             null_cond: torch.Tensor | None = None,
             regression: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None = None) -> dict[str, float]:
    """``fake_steps_per_generator_step`` fake-score updates, then one G update; returns float logs.

    The fake score goes first so that it tracks the current G (DMD2's two time-scale rule); each update draws
    fresh noise of ``noise_shape`` for the batch ``cond``. G minimises distribution matching +
    regression_weight * regression on ``regression`` = (noise, cond, teacher output). The teacher
    is frozen and never stepped. Randomness: ``sample_generator(cfg.seed, step)``.
    """
    if generator_model is teacher or fake_model is teacher:
        raise ValueError("the generator and the fake score must be copies of the teacher (init_students)")
    if cfg.regression_weight > 0 and regression is None:
        raise ValueError("regression_weight > 0 needs regression pairs (regression_pairs)")
    teacher.requires_grad_(False)
    rng = sample_generator(cfg.seed, step)
    param = next(generator_model.parameters())
    t_gen = generator_timestep(diffusion.num_steps, cfg.generator_t_frac)

    def generate() -> torch.Tensor:
        noise = torch.randn(noise_shape, generator=rng).to(param)
        return one_step(generator_model, diffusion, noise, cond, t_gen)

    fake_losses = []
    for _ in range(cfg.fake_steps_per_generator_step):
        with torch.no_grad():
            x = generate()
        loss_f = fake_score_loss(fake_model, diffusion, x, cond, rng)
        opt_f.zero_grad(set_to_none=True)
        loss_f.backward()
        opt_f.step()
        fake_losses.append(loss_f.item())

    def real_x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict_x0(teacher, diffusion, x_t, t, cond, cfg.guidance_scale, null_cond)

    def fake_x0(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict_x0(fake_model, diffusion, x_t, t, cond)

    loss_g, logs = distribution_matching_loss(generate(), real_x0, fake_x0, diffusion,
                                              *timestep_range(cfg, diffusion.num_steps), rng)
    if cfg.regression_weight > 0:
        noise_r, cond_r, target_r = regression
        loss_reg = regression_loss(one_step(generator_model, diffusion, noise_r, cond_r, t_gen), target_r)
        loss_g = loss_g + cfg.regression_weight * loss_reg
        logs["regression_loss"] = loss_reg.item()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return {**logs, "generator_loss": loss_g.item(), "fake_loss": sum(fake_losses) / len(fake_losses)}
