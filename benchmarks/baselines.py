"""Latent-diffusion baselines built with ``diffusers`` from configs (random weights, no download).

docs/design.md section 10: a PixArt-Sigma-sized DiT (``PixArtTransformer2DModel``: 28 layers, 16 heads
x 72, 0.61B, 20 steps) and an SD3-medium-sized MMDiT (``SD3Transformer2DModel``: 24 layers, 24
heads x 64, 2.03B, 28 steps), each with classifier-free guidance (the denoiser runs on a batch of
2B: prompts and null prompts), its own scheduler (DPM-Solver++ and flow-matching Euler, as their
pipelines use) and the VAE decode of its family (SDXL-style KL VAE with 4 latent channels, SD3's
with 16; f = 8, 49.5M parameters in the decoder). Text encoders are excluded: the denoisers
get random text states of the lengths their pipelines use (T5: 300 tokens for PixArt-Sigma,
77 CLIP + 256 T5 = 333 for SD3). Speed does not depend on the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VAE_CHANNELS = (128, 256, 512, 512)  # the SD / SDXL / SD3 KL-VAE widths
VAE_SCALE = 8  # pixels per latent cell


@dataclass(frozen=True)
class Baseline:
    name: str
    steps: int
    text_tokens: int
    latent_channels: int


PIXART = Baseline("pixart-sigma-0.6b", steps=20, text_tokens=300, latent_channels=4)
SD3 = Baseline("sd3-medium-2b", steps=28, text_tokens=333, latent_channels=16)
BASELINES = {b.name: b for b in (PIXART, SD3)}


def build_denoiser(b: Baseline, resolution: int) -> torch.nn.Module:
    """The baseline's transformer for ``resolution`` px images (built on the current default device)."""
    from diffusers import PixArtTransformer2DModel, SD3Transformer2DModel

    latent = resolution // VAE_SCALE
    if b is PIXART:
        return PixArtTransformer2DModel(
            num_layers=28, num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8,
            sample_size=latent, patch_size=2, cross_attention_dim=1152, caption_channels=4096,
            norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
            use_additional_conditions=False, interpolation_scale=max(resolution // 512, 1)).eval()
    return SD3Transformer2DModel(
        sample_size=latent, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
        num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
        pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192).eval()


def build_vae(b: Baseline) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=b.latent_channels, block_out_channels=VAE_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2, use_quant_conv=b is PIXART, use_post_quant_conv=b is PIXART).eval()


def build_scheduler(b: Baseline):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    if b is PIXART:
        return DPMSolverMultistepScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                           num_train_timesteps=1000, prediction_type="epsilon")
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)


def condition(b: Baseline, batch: int, device, dtype) -> dict[str, torch.Tensor]:
    """Random text conditions of the baseline's shapes for a CFG batch of 2 x ``batch``."""
    rows = 2 * batch
    text = torch.randn(rows, b.text_tokens, 4096, device=device, dtype=dtype)
    if b is PIXART:
        return {"encoder_hidden_states": text, "added_cond_kwargs": {"resolution": None, "aspect_ratio": None}}
    return {"encoder_hidden_states": text, "pooled_projections": torch.randn(rows, 2048, device=device, dtype=dtype)}


def denoise_step(b: Baseline, model, latents: torch.Tensor, t: torch.Tensor, cond: dict, cfg_scale: float):
    """One guided model evaluation: the prediction for ``latents`` (B, c, h, w) at timestep t."""
    x = torch.cat([latents, latents])
    out = model(x, timestep=t.expand(len(x)).to(x.device), return_dict=False, **cond)[0]
    if b is PIXART:
        out = out[:, : b.latent_channels]  # learned-sigma models predict (eps, variance)
    cond_out, null_out = out.chunk(2)
    return null_out + cfg_scale * (cond_out - null_out)


@torch.no_grad()
def sample(b: Baseline, model, vae, scheduler, batch: int, resolution: int, generator: torch.Generator,
           cfg_scale: float = 4.5, steps: int | None = None) -> torch.Tensor:
    """Images (B, 3, H, W): ``steps`` (default: the baseline's) guided denoising steps, then the VAE decode."""
    param = next(model.parameters())
    latent = resolution // VAE_SCALE
    latents = torch.randn(batch, b.latent_channels, latent, latent, generator=generator).to(param)
    cond = condition(b, batch, param.device, param.dtype)
    scheduler.set_timesteps(steps or b.steps, device=param.device)
    for t in scheduler.timesteps:
        pred = denoise_step(b, model, latents, t, cond, cfg_scale)
        latents = scheduler.step(pred, t, latents, return_dict=False)[0]
    return vae.decode(latents.to(next(vae.parameters()).dtype), return_dict=False)[0]
