"""Configurations of the AR transformer and the residual diffusion head (docs/design.md sections 3, 4).

Frozen dataclasses saved as ``config.json`` beside the weights; named presets in plain dicts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tokenizer.config import PATCH_NUMS_256, PATCH_NUMS_512, PATCH_NUMS_1024


@dataclass(frozen=True)
class TransformerConfig:
    """Scale-wise AR transformer.

    Attributes:
        depth, width, heads: blocks, model width D and attention heads.
        mlp_ratio: MLP hidden width as a multiple of D (GELU MLP).
        vocab_size, latent_channels, patch_nums: V, C and the scales of the tokenizer it serves.
        text_dim: width of the text encoder's hidden states (projected to D).
        max_text_len: longest text context in tokens (longer prompts are truncated).
        rope_theta: base of the 2D rotary position embedding of image tokens.
        norm_eps: RMSNorm / LayerNorm epsilon.
    """

    depth: int = 24
    width: int = 1536
    heads: int = 24
    mlp_ratio: float = 4.0
    vocab_size: int = 4096
    latent_channels: int = 32
    patch_nums: tuple[int, ...] = PATCH_NUMS_1024
    text_dim: int = 1536
    max_text_len: int = 300
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        if self.width % self.heads or (self.width // self.heads) % 4:
            raise ValueError(f"width {self.width} must split into {self.heads} heads of a multiple of 4 "
                             "channels (2D rotary embedding)")
        if self.max_text_len < 1:
            raise ValueError("max_text_len must be at least 1")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    @property
    def image_tokens(self) -> int:
        """L = sum p_k^2, tokens over all scales."""
        return sum(p * p for p in self.patch_nums)


@dataclass(frozen=True)
class DiffusionHeadConfig:
    """MAR's MLP with adaLN predicting the continuous residual (HART: W 1024, 6 blocks, ~37M)."""

    width: int = 1024
    depth: int = 6
    latent_channels: int = 32
    cond_dim: int = 1536
    train_steps: int = 1000
    batch_mul: int = 4
    residual_scale: float = 1.0 / 0.6  # replaced by 1 / std of residuals measured at training start

    def __post_init__(self) -> None:
        if not (math.isfinite(self.residual_scale) and self.residual_scale > 0):
            raise ValueError(f"residual_scale must be a finite number > 0, got {self.residual_scale}")
        if min(self.width, self.depth, self.latent_channels, self.cond_dim, self.train_steps, self.batch_mul) < 1:
            raise ValueError("width, depth, latent_channels, cond_dim, train_steps and batch_mul must be >= 1")


def _small(depth: int, width: int, heads: int, patch_nums, vocab: int, C: int, text_dim: int,
           max_text_len: int) -> TransformerConfig:
    return TransformerConfig(depth=depth, width=width, heads=heads, vocab_size=vocab, latent_channels=C,
                             patch_nums=tuple(patch_nums), text_dim=text_dim, max_text_len=max_text_len)


TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    "hart-0.7b-256": TransformerConfig(patch_nums=PATCH_NUMS_256),
    "hart-0.7b-512": TransformerConfig(patch_nums=PATCH_NUMS_512),
    "hart-0.7b-1024": TransformerConfig(patch_nums=PATCH_NUMS_1024),
    # CPU preset for 64 px models (tokenizer cpu-f8-64, MiniLM text encoder of width 384).
    "cpu-64": _small(8, 256, 8, (1, 2, 3, 4, 6, 8), 1024, 16, 384, 32),
    "tiny": _small(2, 32, 4, (1, 2, 4, 8), 32, 4, 16, 96),
}

HEAD_PRESETS: dict[str, DiffusionHeadConfig] = {
    "hart-0.7b": DiffusionHeadConfig(),
    "cpu-64": DiffusionHeadConfig(width=256, depth=3, latent_channels=16, cond_dim=256),
    "tiny": DiffusionHeadConfig(width=32, depth=2, latent_channels=4, cond_dim=32, train_steps=100),
}


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
