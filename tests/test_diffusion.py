"""Contracts of the residual diffusion head and its process."""

import pytest
import torch

from hart.config import HEAD_PRESETS, DiffusionHeadConfig
from hart.diffusion import GaussianDiffusion, cosine_alpha_bar, respaced_timesteps
from hart.diffusion_head import DiffusionHead


def test_cosine_schedule_is_decreasing_from_one_to_zero():
    ab = cosine_alpha_bar(1000)
    assert ab[0] > 0.999 and ab[-1] < 1e-4
    assert torch.all(ab[1:] < ab[:-1])


def test_respacing_spans_the_chain():
    assert respaced_timesteps(1000, 8) == [0, 143, 285, 428, 571, 714, 856, 999]
    assert respaced_timesteps(1000, 1) == [999]
    with pytest.raises(ValueError, match="diffusion steps"):
        respaced_timesteps(1000, 0)


def test_full_size_head_has_about_37m_parameters():
    with torch.device("meta"):
        params = sum(p.numel() for p in DiffusionHead(HEAD_PRESETS["hart-0.7b"]).parameters())
    assert 35e6 < params < 39e6, params


def overfit_head(steps: int = 300):
    torch.manual_seed(0)
    cfg = DiffusionHeadConfig(width=64, depth=2, latent_channels=4, cond_dim=8, train_steps=100)
    head = DiffusionHead(cfg)
    diffusion = GaussianDiffusion(cfg.train_steps)
    z = torch.eye(8)[:2]  # two conditions
    target = torch.tensor([[1.0, -1.0, 0.5, 0.0], [-0.5, 0.5, 1.0, -1.0]])
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        loss = diffusion.training_loss(head, target.repeat(16, 1), z.repeat(16, 1), g, batch_mul=4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return head, diffusion, z, target, losses


def test_loss_decreases_and_8_step_sampler_recovers_the_target():
    head, diffusion, z, target, losses = overfit_head()
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20
    g = torch.Generator().manual_seed(1)
    samples = diffusion.sample(head, z.repeat(32, 1), 4, steps=8, generator=g, clip_x0=3.0)
    err = (samples.view(32, 2, 4).mean(0) - target).abs().max()
    assert err < 0.15, err


def test_sampler_is_deterministic_per_generator_and_guidance_runs():
    head, diffusion, z, _, _ = overfit_head(steps=5)
    a = diffusion.sample(head, z, 4, 8, torch.Generator().manual_seed(3))
    b = diffusion.sample(head, z, 4, 8, torch.Generator().manual_seed(3))
    c = diffusion.sample(head, z, 4, 8, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    guided = diffusion.sample(head, z, 4, 8, torch.Generator().manual_seed(3), cfg_scale=3.0,
                              z_null_ND=torch.zeros_like(z))
    assert guided.shape == a.shape and torch.isfinite(guided).all()
