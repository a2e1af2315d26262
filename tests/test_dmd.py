"""Contracts of distribution matching distillation (hart/dmd.py) on toy problems."""

import math

import pytest
import torch

from hart.config import DiffusionHeadConfig
from hart.diffusion import GaussianDiffusion
from hart.diffusion_head import DiffusionHead
from hart.dmd import (
    DMDConfig,
    ddim_sample,
    distribution_matching_loss,
    dmd_step,
    fake_score_loss,
    init_students,
    one_step,
    predict_x0,
    regression_pairs,
    timestep_range,
)

DIFFUSION = GaussianDiffusion(1000)
MODES = (-2.0, 2.0)
MODE_STD = 0.3
KERNEL = 0.1  # width of the kernel estimate of the generator's distribution


def mixture_x0(x_t: torch.Tensor, t: torch.Tensor, means: torch.Tensor, stds: torch.Tensor) -> torch.Tensor:
    """E[x0 | x_t] for x0 ~ (1/K) sum_k N(m_k, s_k^2) in each dimension, under the cosine schedule.

    x_t | k ~ N(a m_k, a^2 s_k^2 + 1 - a^2), a = sqrt(ab_t): responsibilities from those, then the
    Gaussian posterior mean m_k + a s_k^2 / var_k (x_t - a m_k) of each component.
    """
    x = x_t.double()[..., None]
    ab = DIFFUSION.alpha_bar[t].view(-1, *(1,) * x_t.ndim)
    a, m, s = ab.sqrt(), means.double().flatten(), stds.double().flatten()
    var = a**2 * s**2 + 1 - ab
    logits = -0.5 * var.log() - 0.5 * (x - a * m) ** 2 / var
    post = m + a * s**2 / var * (x - a * m)
    return (logits.softmax(-1) * post).sum(-1).to(x_t.dtype)


def eps_model(x0_fn):
    """An epsilon predictor whose x0 estimate is x0_fn: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    def model(x_t, t, cond):
        ab = DIFFUSION.alpha_bar[t].view(-1, *(1,) * (x_t.ndim - 1)).to(x_t.dtype)
        return (x_t - ab.sqrt() * x0_fn(x_t, t)) / (1 - ab).sqrt()
    return model


teacher = eps_model(lambda x_t, t: mixture_x0(x_t, t, torch.tensor(MODES), torch.tensor([MODE_STD] * len(MODES))))


def distance_to_modes(x: torch.Tensor) -> float:
    return torch.stack([(x - m).abs() for m in MODES]).min(0).values.mean().item()


def test_distribution_matching_moves_a_generator_onto_the_teacher_modes():
    # G's parameters are its N samples (a lookup table from N fixed noises: the most flexible G,
    # so DMD's fixed point is p_G = p_real), started between the modes. The fake score is the exact
    # x0 of G's current distribution, smoothed by a kernel of width KERNEL. Following DMD's gradient
    # must carry the samples to the modes; with grad's sign flipped they drift away (about 1.87).
    g = torch.Generator().manual_seed(0)
    x = torch.nn.Parameter(0.5 + 0.2 * torch.randn(256, 1, generator=g))
    opt = torch.optim.Adam([x], lr=0.1)
    before = distance_to_modes(x.detach())
    real = lambda x_t, t: predict_x0(teacher, DIFFUSION, x_t, t, None)  # noqa: E731
    t_min, t_max = timestep_range(DMDConfig(), DIFFUSION.num_steps)
    for _ in range(40):
        samples = x.detach().clone()
        fake = lambda x_t, t, s=samples: mixture_x0(x_t, t, s, torch.full_like(s, KERNEL))  # noqa: E731
        loss, stats = distribution_matching_loss(x, real, fake, DIFFUSION, t_min, t_max, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = distance_to_modes(x.detach())
    assert before > 1.4 and after < 0.5 * before, (before, after)
    assert 0.2 < (x > 0).float().mean() < 0.8  # both modes are reached, not only the nearer one
    assert all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 4, 4)])
def test_surrogate_gradient_is_the_normalised_score_difference_per_sample(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    real_x0, fake_x0 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    real, fake = (lambda x_t, t: real_x0), (lambda x_t, t: fake_x0)

    def grad_of(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        loss, _ = distribution_matching_loss(x, real, fake, DIFFUSION, 20, 980, torch.Generator().manual_seed(2))
        loss.backward()
        return x.grad

    dims = tuple(range(1, len(shape)))
    expected = (fake_x0 - real_x0) / (x - real_x0).abs().mean(dims, keepdim=True)
    got = grad_of(x)
    torch.testing.assert_close(got * shape[0], expected)
    # Doubling sample 1's distance to x0_real halves its gradient and leaves the other samples alone.
    far = x.clone()
    far[1] = real_x0[1] + 2 * (x[1] - real_x0[1])
    got_far = grad_of(far)
    torch.testing.assert_close(got_far[1], got[1] / 2)
    keep = [i for i in range(shape[0]) if i != 1]
    torch.testing.assert_close(got_far[keep], got[keep])


def test_drawn_timesteps_cover_exactly_the_configured_range():
    t_min, t_max = timestep_range(DMDConfig(t_min_frac=0.02, t_max_frac=0.98), DIFFUSION.num_steps)
    assert (t_min, t_max) == (round(0.02 * 1000), round(0.98 * 1000))
    seen = []
    record = lambda x_t, t: (seen.append(t), torch.zeros_like(x_t))[1]  # noqa: E731
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        distribution_matching_loss(torch.randn(5000, 1, generator=g), record, record, DIFFUSION, t_min, t_max, g)
    t = torch.cat(seen)
    assert t.min() == t_min and t.max() == t_max
    assert torch.unique(t).numel() == t_max - t_min + 1
    assert timestep_range(DMDConfig(t_min_frac=1.0, t_max_frac=1.0), 1000) == (999, 999)


def tiny_head(seed: int = 0) -> DiffusionHead:
    torch.manual_seed(seed)
    head = DiffusionHead(DiffusionHeadConfig(width=16, depth=1, latent_channels=4, cond_dim=8, train_steps=100))
    torch.nn.init.normal_(head.final_linear.weight, std=0.1)  # adaLN-Zero would make eps = 0
    torch.nn.init.normal_(head.final_adaLN[1].weight, std=0.1)
    return head.eval()


def test_regression_pairs_are_reproducible_per_seed():
    head, diffusion = tiny_head(), GaussianDiffusion(100)
    cond = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))

    def sample(noise, c):
        return ddim_sample(head, diffusion, noise, c, steps=4, clip_x0=5.0)

    n1, y1 = regression_pairs(sample, cond, (8, 4), seed=3)
    n2, y2 = regression_pairs(sample, cond, (8, 4), seed=3)
    n3, y3 = regression_pairs(sample, cond, (8, 4), seed=4)
    assert torch.equal(n1, n2) and torch.equal(y1, y2)
    assert not torch.equal(n1, n3) and not torch.equal(y1, y3)
    assert y1.shape == (8, 4) and torch.isfinite(y1).all()
    # With the exact mixture teacher, the deterministic sampler reproduces the mixture.
    x = ddim_sample(teacher, DIFFUSION, torch.randn(2000, 1, generator=torch.Generator().manual_seed(0)), None, 25)
    assert 0.45 < (x > 0).float().mean() < 0.55 and abs(x.abs().std().item() - MODE_STD) < 0.03


@pytest.mark.parametrize("kwargs, key", [
    ({"guidance_scale": 0.5}, "guidance_scale"),
    ({"t_min_frac": 0.5, "t_max_frac": 0.2}, "t_min_frac"),
    ({"t_max_frac": 1.5}, "t_max_frac"),
    ({"t_min_frac": -0.1}, "t_min_frac"),
    ({"fake_steps_per_generator_step": 0}, "fake_steps_per_generator_step"),
    ({"regression_weight": -1.0}, "regression_weight"),
    ({"generator_lr": 0.0}, "generator_lr"),
    ({"generator_t_frac": 0.0}, "generator_t_frac"),
])
def test_bad_settings_are_refused_by_name(kwargs, key):
    with pytest.raises(ValueError, match=key):
        DMDConfig(**kwargs)


def test_one_step_gives_finite_x0_of_the_noise_shape():
    head, diffusion = tiny_head(), GaussianDiffusion(100)
    noise, cond = torch.randn(6, 4), torch.randn(6, 8)
    x0 = one_step(head, diffusion, noise, cond)
    assert x0.shape == (6, 4) and torch.isfinite(x0).all()
    assert one_step(head, diffusion, noise, cond, t_gen=99, clip_x0=5.0).abs().max() <= 5.0
    # With the exact x0 of the mixture, one step at the default t_gen lands between the modes.
    x0 = one_step(teacher, DIFFUSION, torch.randn(1000, 1), None)
    assert torch.isfinite(x0).all() and x0.abs().max() <= max(abs(m) for m in MODES)


def test_guidance_mixes_conditioned_and_null_eps_in_one_call():
    calls = []
    model = lambda x_t, t, c: (calls.append(c.shape[0]), c.expand_as(x_t))[1]  # noqa: E731  eps = cond
    x_t, t = torch.zeros(3, 2), torch.full((3,), 500)
    cond, null = torch.ones(3, 2), torch.zeros(1, 2)
    x0 = predict_x0(model, DIFFUSION, x_t, t, cond, guidance_scale=3.0, null_cond=null)
    ab = DIFFUSION.alpha_bar[500].item()
    torch.testing.assert_close(x0, torch.full((3, 2), -math.sqrt(1 - ab) * 3.0 / math.sqrt(ab)))
    assert calls == [6]


def test_fake_score_loss_is_the_epsilon_mse_for_rows_and_images():
    head, diffusion = tiny_head(), GaussianDiffusion(100)
    x, cond = torch.randn(6, 4), torch.randn(6, 8)
    got = fake_score_loss(head, diffusion, x, cond, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t, noise = torch.randint(100, (6,), generator=g), torch.randn(6, 4, generator=g)
    torch.testing.assert_close(got, diffusion.training_loss(head, x, cond, t=t, noise=noise))
    images = torch.randn(2, 3, 4, 4)  # any shape, no condition: eps = 0 gives the noise's mean square
    got = fake_score_loss(lambda x_t, t, c: torch.zeros_like(x_t), diffusion, images, None,
                          torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    torch.randint(100, (2,), generator=g)
    torch.testing.assert_close(got, torch.randn(images.shape, generator=g).pow(2).mean())


def test_dmd_step_trains_the_students_and_leaves_the_teacher_alone():
    teacher_head, diffusion = tiny_head(), GaussianDiffusion(100)
    cfg = DMDConfig(guidance_scale=2.0, regression_weight=0.5, fake_steps_per_generator_step=3,
                    generator_lr=1e-3, fake_lr=1e-3)
    gen, fake, opt_g, opt_f = init_students(teacher_head, cfg)
    before = {k: v.clone() for k, v in teacher_head.state_dict().items()}
    cond = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    pairs = regression_pairs(lambda n, c: ddim_sample(teacher_head, diffusion, n, c, 4, clip_x0=5.0), cond, (8, 4), 1)
    gen0 = gen.final_linear.weight.clone()
    logs = dmd_step(gen, fake, teacher_head, opt_g, opt_f, diffusion, cond, (8, 4), cfg, step=0,
                    null_cond=torch.zeros(1, 8), regression=(pairs[0], cond, pairs[1]))
    assert all(math.isfinite(v) for v in logs.values()) and "regression_loss" in logs
    assert all(torch.equal(v, before[k]) for k, v in teacher_head.state_dict().items())
    assert not any(p.requires_grad for p in teacher_head.parameters())
    assert not torch.equal(gen.final_linear.weight, gen0)
    assert opt_f.state[fake.final_linear.weight]["step"] == 3 and opt_g.state[gen.final_linear.weight]["step"] == 1
    with pytest.raises(ValueError, match="copies"):
        dmd_step(teacher_head, fake, teacher_head, opt_g, opt_f, diffusion, cond, (8, 4), cfg, step=1)
