"""The hybrid tokenizer: discrete multi-scale tokens plus a continuous residual (HART Sec. 3.1).

``encode`` maps images to K index maps (the big picture) and the residual ``f - f_hat`` at the
last scale (the detail the codebook misses). ``decode(codes, use_residual=False)`` is the discrete
path, ``decode(codes)`` the hybrid path, which reconstructs ``decode(f)``. One decoder serves both
because training alternates the two paths (see ``forward`` and ``tokenizer.train``).

Shapes: B batch, H = W image side, C latent channels, h = p_K latent side, K scales.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tokenizer.autoencoder import Decoder, Encoder
from tokenizer.checkpoint import load_component, save_component
from tokenizer.config import TokenizerConfig, get_preset
from tokenizer.finite import require_finite
from tokenizer.quantizer import MultiScaleQuantizer

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
RANGE_SLACK = 1e-3  # inputs may exceed [-1, 1] by float rounding of a normalisation


@dataclass
class HybridCodes:
    """Tokens of a batch of images.

    indices: K long tensors (B, p_k, p_k), codebook indices of each scale.
    residual: (B, C, h, h) continuous residual f - f_hat at the last scale.
    """

    indices: list[torch.Tensor]
    residual: torch.Tensor


@dataclass
class TokenizerOutput:
    """Training forward: reconstruction, VQ loss and the indices (for codebook statistics)."""

    recon: torch.Tensor
    vq_loss: torch.Tensor
    indices: list[torch.Tensor]
    f: torch.Tensor


class HybridTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        C = config.latent_channels
        self.encoder = Encoder(config.ch, config.ch_mult, config.num_res_blocks, C, config.dropout, config.patch_skip)
        self.quant_conv = nn.Conv2d(C, C, 3, padding=1)
        self.quantizer = MultiScaleQuantizer(
            config.vocab_size, C, config.patch_nums, config.quant_resi, config.num_phis, config.beta
        )
        self.post_quant_conv = nn.Conv2d(C, C, 3, padding=1)
        self.decoder = Decoder(config.ch, config.ch_mult, config.num_res_blocks, C, config.dropout, config.patch_skip)

    # ----------------------------------------------------------------- inputs and latents
    def check_images(self, images: torch.Tensor) -> None:
        """Raise ValueError unless images is (B, 3, S, S) in [-1, 1] with S = config.image_size."""
        S = self.config.image_size
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
        B, channels, H, W = images.shape
        if channels != 3:
            raise ValueError(f"images must have 3 (RGB) channels, got {channels}; convert grey or RGBA images to RGB")
        f = self.config.downsample
        if H % f or W % f:
            raise ValueError(f"image size {H}x{W} is not divisible by the downsampling factor f = {f}")
        if (H, W) != (S, S):
            raise ValueError(f"this tokenizer takes {S}x{S} images, got {H}x{W}; resize or crop first")
        if images.device.type != "meta":
            if not torch.isfinite(images).all():
                raise ValueError("images contain NaN or infinite values")
            lo, hi = images.min().item(), images.max().item()
            if lo < -1 - RANGE_SLACK or hi > 1 + RANGE_SLACK:
                raise ValueError(
                    f"images must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                    "map uint8 pixels with x / 127.5 - 1"
                )

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Continuous latent f (B, C, h, h) of images (B, 3, H, W) in [-1, 1]."""
        return self.quant_conv(self.encoder(images))

    def decode_latent(self, f: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W), unclamped, from a latent (B, C, h, h): f_hat or f_hat + residual."""
        return self.decoder(self.post_quant_conv(f))

    # ----------------------------------------------------------------- public API
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> HybridCodes:
        """Tokenize images (B, 3, H, W) in [-1, 1] into K index maps and the residual."""
        self.check_images(images)
        f = require_finite(self.encode_latent(images), "tokenizer encoder")
        q = self.quantizer(f)
        f_hat = self.quantizer.indices_to_f_hat(q.indices)
        return HybridCodes(indices=q.indices, residual=f - f_hat)

    @torch.no_grad()
    def decode(self, codes: HybridCodes, use_residual: bool = True) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] from codes; without the residual: discrete tokens only."""
        self.check_codes(codes)
        f_hat = self.quantizer.indices_to_f_hat(codes.indices)
        if use_residual:
            f_hat = f_hat + require_finite(codes.residual, "residual of the given codes")
        return require_finite(self.decode_latent(f_hat), "tokenizer decoder").clamp(-1.0, 1.0)

    def check_codes(self, codes: HybridCodes) -> None:
        pn = self.config.patch_nums
        if len(codes.indices) != len(pn):
            raise ValueError(f"expected {len(pn)} index maps (one per scale), got {len(codes.indices)}")
        B = codes.indices[0].shape[0]
        for k, (idx, p) in enumerate(zip(codes.indices, pn, strict=False)):
            if idx.shape != (B, p, p) or idx.dtype != torch.long:
                raise ValueError(f"index map {k} must be a long tensor of shape ({B}, {p}, {p}), got "
                                 f"{idx.dtype} {tuple(idx.shape)}")
        h, C = pn[-1], self.config.latent_channels
        if codes.residual.shape != (B, C, h, h):
            raise ValueError(f"residual must have shape ({B}, {C}, {h}, {h}), got {tuple(codes.residual.shape)}")

    def forward(self, images: torch.Tensor, use_residual: bool) -> TokenizerOutput:
        """Training step: reconstruct through the continuous (f) or the discrete (f_hat) path."""
        f = self.encode_latent(images)
        q = self.quantizer(f)
        recon = self.decode_latent(f if use_residual else q.f_hat)
        return TokenizerOutput(recon=recon, vq_loss=q.vq_loss, indices=q.indices, f=f)

    # ----------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        return save_component(directory, self.config, self)

    @classmethod
    def from_config(cls, config: TokenizerConfig | str, device: str | torch.device = "cpu",
                    seed: int | None = None) -> HybridTokenizer:
        """A randomly initialised tokenizer of ``config`` or of a preset name."""
        if isinstance(config, str):
            config = get_preset(config)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.device(device):
            return cls(config)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, device: str | torch.device = "cpu"
                        ) -> HybridTokenizer:
        """Load a shipped tokenizer by name (e.g. ``"photo-f8"``) or from a saved directory."""
        return load_component(resolve_pretrained(name_or_dir), TokenizerConfig, cls).to(device)


def shipped_names() -> list[str]:
    """Names of the tokenizers that install with the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_pretrained(name_or_dir: str | os.PathLike) -> Path:
    """Directory of a shipped model name or of an existing path; a clear error otherwise."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    shipped = PRETRAINED_DIR / str(name_or_dir)
    if shipped.is_dir():
        return shipped
    raise FileNotFoundError(
        f"no tokenizer directory or shipped tokenizer named {str(name_or_dir)!r}; "
        f"shipped names: {shipped_names()}; a directory must hold config.json and model.safetensors"
    )
