"""The diffusion baseline's denoiser: diffusers' PixArt-Sigma transformer at a small size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from tokenizer.config_types import checked_fields


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of a ``PixArtTransformer2DModel`` over a (latent_channels, latent_size, latent_size) latent.

    Attributes:
        latent_channels: C of the tokenizer latent f the model denoises.
        latent_size: side of that latent (the tokenizer's last patch_num).
        text_dim: width of the text encoder's hidden states (MiniLM: 384).
        depth, heads, head_dim: transformer blocks, attention heads and their width (D = heads x head_dim).
        patch_size: latent cells per token side (1: one token per latent cell).
        train_steps: T of the linear-beta epsilon-prediction diffusion it is trained on.
        latent_scale: multiplies f before diffusion (1 / std of training latents: unit variance).
    """

    latent_channels: int = 16
    latent_size: int = 8
    text_dim: int = 384
    depth: int = 8
    heads: int = 8
    head_dim: int = 32
    patch_size: int = 1
    train_steps: int = 1000
    latent_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, value in checked_fields(DiTConfig, dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)
        if min(self.latent_channels, self.latent_size, self.text_dim, self.depth, self.heads, self.head_dim,
               self.patch_size, self.train_steps) < 1:
            raise ValueError(f"every size of a DiTConfig must be >= 1, got {self}")
        if self.latent_size % self.patch_size:
            raise ValueError(f"latent_size {self.latent_size} is not a multiple of patch_size {self.patch_size}")
        if not self.latent_scale > 0:
            raise ValueError(f"latent_scale must be > 0, got {self.latent_scale}")

    @property
    def width(self) -> int:
        return self.heads * self.head_dim


DIT_PRESETS: dict[str, DiTConfig] = {
    # About the parameters of the cpu-64 HART transformer + head (7.22M + 1.32M).
    "cpu-64": DiTConfig(latent_channels=16, latent_size=8, text_dim=384, depth=8, heads=8, head_dim=32),
    "tiny": DiTConfig(latent_channels=4, latent_size=8, text_dim=16, depth=2, heads=2, head_dim=8, patch_size=2),
}


class DiTDenoiser(nn.Module):
    """eps(x_t, t, text): the noise in a scaled latent, given the text states and their mask."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        from diffusers import PixArtTransformer2DModel

        self.config = config
        self.net = PixArtTransformer2DModel(
            num_attention_heads=config.heads, attention_head_dim=config.head_dim, in_channels=config.latent_channels,
            out_channels=config.latent_channels, num_layers=config.depth, sample_size=config.latent_size,
            patch_size=config.patch_size, cross_attention_dim=config.width, caption_channels=config.text_dim,
            norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
            use_additional_conditions=False, interpolation_scale=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x_t (B, C, h, h), t (B,) long, text (B, T, text_dim), mask (B, T) bool -> eps (B, C, h, h)."""
        return self.net(x_t, encoder_hidden_states=text, timestep=t, encoder_attention_mask=mask.to(x_t.dtype),
                        added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)[0]
