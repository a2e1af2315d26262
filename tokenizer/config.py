"""Configuration of the hybrid tokenizer (docs/design.md section 2).

One frozen dataclass describes a tokenizer completely: the autoencoder widths, the codebook and
the multi-scale quantizer's scales. It is saved as ``config.json`` beside the weights and loaded
with ``TokenizerConfig(**json)``, so an unknown key is an error rather than a silent default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Scales of HART's tokenizer (HART repo configs; VAR paper Table 1 for 256 px).
PATCH_NUMS_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)
PATCH_NUMS_1024 = (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)


@dataclass(frozen=True)
class TokenizerConfig:
    """Hybrid tokenizer hyper-parameters.

    Attributes:
        image_size: side of the square input image in pixels.
        vocab_size: V, number of codebook entries shared by all scales.
        latent_channels: C, channels of the continuous latent f and of each code.
        ch: base width of the conv autoencoder.
        ch_mult: width multipliers per resolution level; f = 2 ** (len(ch_mult) - 1).
        num_res_blocks: ResNet blocks per level in the encoder (the decoder uses one more).
        patch_nums: sides p_1..p_K of the K token maps; p_K must equal image_size // f.
        quant_resi: residual ratio of the phi blending convs (VAR: 0.5).
        num_phis: number of phi convs shared across the K scales (VAR: 4).
        beta: commitment loss weight (VQ-VAE, beta = 0.25).
        dropout: dropout inside the autoencoder's ResNet blocks.
        patch_skip: add linear f x f patch shortcuts around encoder and decoder (not in HART;
            makes small CPU tokenizers of photos trainable in minutes, see tokenizer.autoencoder).
    """

    image_size: int = 128
    vocab_size: int = 4096
    latent_channels: int = 32
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    quant_resi: float = 0.5
    num_phis: int = 4
    beta: float = 0.25
    dropout: float = 0.0
    patch_skip: bool = False

    def __post_init__(self) -> None:
        # JSON turns tuples into lists; normalise so equality and hashing behave.
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "patch_nums", tuple(int(p) for p in self.patch_nums))
        if self.image_size % self.downsample != 0:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by the downsampling factor "
                f"{self.downsample} implied by ch_mult {self.ch_mult}"
            )
        if self.patch_nums[-1] != self.latent_size:
            raise ValueError(
                f"the last scale p_K = {self.patch_nums[-1]} must equal the latent size "
                f"image_size // f = {self.latent_size}"
            )
        if list(self.patch_nums) != sorted(set(self.patch_nums)):
            raise ValueError(f"patch_nums must be strictly increasing, got {self.patch_nums}")
        if not 0.0 <= self.quant_resi <= 1.0:
            raise ValueError(f"quant_resi must lie in [0, 1], got {self.quant_resi}")
        if self.num_phis < 1 or self.vocab_size < 2 or self.latent_channels < 1:
            raise ValueError("num_phis >= 1, vocab_size >= 2 and latent_channels >= 1 are required")

    @property
    def downsample(self) -> int:
        """Spatial downsampling factor f of the autoencoder."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        """Side h = w of the latent map f."""
        return self.image_size // self.downsample

    @property
    def num_scales(self) -> int:
        """K, the number of token maps."""
        return len(self.patch_nums)

    @property
    def tokens_per_image(self) -> int:
        """Total discrete tokens over all scales, sum of p_k^2."""
        return sum(p * p for p in self.patch_nums)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, TokenizerConfig] = {
    # Full-size HART tokenizer (docs/design.md section 2): V 4096, C 32, ch 160, f = 16.
    "hart-256": TokenizerConfig(image_size=256, patch_nums=PATCH_NUMS_256),
    "hart-512": TokenizerConfig(image_size=512, patch_nums=PATCH_NUMS_512),
    "hart-1024": TokenizerConfig(image_size=1024, patch_nums=PATCH_NUMS_1024),
    # Small CPU presets, f = 8.
    "cpu-f8-128": TokenizerConfig(
        image_size=128, vocab_size=4096, latent_channels=32, ch=32, ch_mult=(1, 2, 4, 4),
        num_res_blocks=1, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
    ),
    # cpu-f8-128 with linear patch shortcuts: the photo-f8 tokenizer (patch-PCA initialised).
    "cpu-f8-128-skip": TokenizerConfig(
        image_size=128, vocab_size=4096, latent_channels=32, ch=32, ch_mult=(1, 2, 4, 4),
        num_res_blocks=1, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16), patch_skip=True,
    ),
    "cpu-f8-64": TokenizerConfig(
        image_size=64, vocab_size=1024, latent_channels=16, ch=32, ch_mult=(1, 2, 2, 4),
        num_res_blocks=1, patch_nums=(1, 2, 3, 4, 6, 8),
    ),
    # Tiny configuration for unit tests: seconds on a CPU.
    "tiny": TokenizerConfig(
        image_size=16, vocab_size=32, latent_channels=4, ch=8, ch_mult=(1, 2),
        num_res_blocks=1, patch_nums=(1, 2, 4, 8), num_phis=2,
    ),
}


def get_preset(name: str) -> TokenizerConfig:
    """Return the preset called ``name``, or raise a KeyError listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown tokenizer preset {name!r}; known presets: {sorted(PRESETS)}") from None
