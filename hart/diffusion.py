"""Gaussian diffusion of the residual tokens (docs/design.md section 4), written from the papers.

Forward process and posterior: DDPM (Ho et al. 2020, Eq. 4, 6, 7); cosine schedule and respacing:
IDDPM (Nichol & Dhariwal 2021, Eq. 17 and Sec. 4). Epsilon prediction, fixed posterior variance
beta_tilde; sampling respaced to a few steps (HART: 8) with classifier-free guidance.

Shapes: N tokens, C channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

COSINE_OFFSET = 0.008  # s in IDDPM Eq. 17
MAX_BETA = 0.999


def cosine_alpha_bar(num_steps: int) -> torch.Tensor:
    """alpha_bar_t for t = 0..num_steps-1 (float64), from IDDPM's cosine schedule with clipped betas."""
    def f(t: float) -> float:
        return math.cos((t / num_steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - f(i + 1) / f(i), MAX_BETA) for i in range(num_steps)], dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def respaced_timesteps(num_steps: int, sample_steps: int) -> list[int]:
    """``sample_steps`` evenly spaced original timesteps from 0 to num_steps - 1 (IDDPM Sec. 4)."""
    if not 1 <= sample_steps <= num_steps:
        raise ValueError(f"diffusion steps must lie in [1, {num_steps}], got {sample_steps}")
    if sample_steps == 1:
        return [num_steps - 1]
    stride = (num_steps - 1) / (sample_steps - 1)
    return [round(i * stride) for i in range(sample_steps)]


class GaussianDiffusion:
    """Cosine-schedule diffusion with epsilon prediction over ``num_steps`` training steps."""

    def __init__(self, num_steps: int = 1000) -> None:
        self.num_steps = num_steps
        self.alpha_bar = cosine_alpha_bar(num_steps)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (DDPM Eq. 4)."""
        ab = self.alpha_bar.to(x0.device)[t].to(x0.dtype)[:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def training_loss(self, model: Callable, x0_NC: torch.Tensor, z_ND: torch.Tensor,
                      generator: torch.Generator | None = None, batch_mul: int = 1,
                      t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Mean epsilon-MSE; each token is repeated ``batch_mul`` times with independent t (MAR).

        ``t`` (batch_mul N,) and ``noise`` (batch_mul N, C), ordered as ``x0_NC.repeat(batch_mul, 1)``,
        may be drawn by the caller (the trainer draws them per sample, so that they do not depend on
        how a batch is split over processes); otherwise they come from ``generator``.
        """
        x0 = x0_NC.repeat(batch_mul, 1)
        z = z_ND.repeat(batch_mul, 1)
        if t is None:
            t = torch.randint(self.num_steps, (x0.shape[0],), generator=generator, device="cpu")
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device="cpu")
        t, noise = t.to(x0.device), noise.to(x0)
        return (model(self.q_sample(x0, t, noise), t, z) - noise).pow(2).mean()

    @torch.no_grad()
    def sample(self, model: Callable, z_ND: torch.Tensor, channels: int, steps: int,
               generator: torch.Generator | None = None, cfg_scale: float = 1.0,
               z_null_ND: torch.Tensor | None = None, temperature: float = 1.0,
               clip_x0: float | None = None, draw_noise: Callable[[], torch.Tensor] | None = None
               ) -> torch.Tensor:
        """Ancestral sampling over ``steps`` respaced timesteps; returns x0 (N, C).

        With ``z_null_ND`` and cfg_scale != 1, each step runs conditioned and unconditioned tokens
        in one batched call and mixes eps_u + cfg_scale * (eps_c - eps_u). ``clip_x0`` clamps the
        predicted x0 (IDDPM's clip_denoised): at the first respaced step alpha_bar is ~1e-9 and the
        x0 estimate amplifies any error in eps by 1/sqrt(alpha_bar). ``draw_noise`` returns the (N, C)
        noise of one draw in place of ``generator`` (the sampler draws each prompt's tokens from that
        prompt's own generator, so a batch runs as one call).
        """
        N, device, dtype = z_ND.shape[0], z_ND.device, z_ND.dtype
        ts = respaced_timesteps(self.num_steps, steps)
        ab = self.alpha_bar[ts]  # respaced alpha_bar (float64)
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        betas = 1 - ab / ab_prev
        guided = z_null_ND is not None and cfg_scale != 1.0
        z_all = torch.cat([z_ND, z_null_ND]) if guided else z_ND
        def noise() -> torch.Tensor:
            drawn = draw_noise() if draw_noise else torch.randn((N, channels), generator=generator, device="cpu")
            return drawn.to(device, dtype)

        x = noise()
        for i in reversed(range(len(ts))):
            t = torch.full((z_all.shape[0],), ts[i], device=device, dtype=torch.long)
            eps = model(torch.cat([x, x]) if guided else x, t, z_all)
            if guided:
                eps_c, eps_u = eps.chunk(2)
                eps = eps_u + cfg_scale * (eps_c - eps_u)
            a, a_prev, beta = float(ab[i]), float(ab_prev[i]), float(betas[i])
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
            if clip_x0 is not None:
                x0 = x0.clamp(-clip_x0, clip_x0)
            # Posterior q(x_{t-1} | x_t, x0) (DDPM Eq. 7) on the respaced chain.
            mean = (math.sqrt(a_prev) * beta / (1 - a)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)) * x
            if i > 0:
                var = beta * (1 - a_prev) / (1 - a)
                x = mean + math.sqrt(var) * temperature * noise()
            else:
                x = mean
        return x
