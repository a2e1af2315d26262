"""VQGAN-style convolutional encoder and decoder (docs/design.md section 2).

ResNet blocks with GroupNorm and SiLU, strided-conv downsampling, nearest-neighbour upsampling and
self-attention in the middle and after each block of the lowest-resolution level, as in the
taming-transformers autoencoder that VAR and HART use. Departures: attention is SDPA; the encoder
emits the latent f directly with ``latent_channels`` channels (no double_z, no KL).

Optional ``patch_skip`` (off in HART's presets): a linear space-to-channel shortcut around each
network, in the spirit of DC-AE's residual autoencoding (Chen et al. 2024). The encoder adds a
linear map of each f x f pixel patch to its latent vector, the decoder adds a linear map of each
latent vector back to its f x f patch. Together they are a learnt patch PCA, which a few hundred
CPU steps fit (PCA with 32 components of 8 x 8 patches reconstructs unseen 128 px photo tiles at
36.7 dB), so the deep paths only have to learn what a linear code misses.

Shapes: B batch, ch width, H x W image, h x w = H/f x W/f latent.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 32  # GroupNorm groups of the full-size model (VAR/taming: 32)
MIN_GROUP_WIDTH = 4  # channels per group in narrow CPU presets


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or groups of at least 4 channels for narrow widths.

    A group of one channel is instance norm: it erases each channel's mean over the image, so
    flat colours could not pass the decoder's last norm (seen as washed-out reconstructions).
    """
    if channels >= GROUPS * MIN_GROUP_WIDTH:
        return nn.GroupNorm(GROUPS, channels, eps=1e-6)
    return nn.GroupNorm(math.gcd(GROUPS, max(1, channels // MIN_GROUP_WIDTH)), channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention over the h*w positions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, 1, C, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric pad keeps H/2 exactly


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """Image (B, 3, H, W) -> latent f (B, C, H/f, W/f)."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int,
                 dropout: float = 0.0, patch_skip: bool = False) -> None:
        super().__init__()
        f = 2 ** (len(ch_mult) - 1)
        self.patch_skip = nn.Conv2d(3, z_channels, f, stride=f) if patch_skip else None
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        widths = [ch * m for m in (1, *ch_mult)]
        self.down = nn.ModuleList()
        for level in range(len(ch_mult)):
            stage = nn.Module()
            stage.block = nn.ModuleList(
                ResnetBlock(widths[level] if i == 0 else widths[level + 1], widths[level + 1], dropout)
                for i in range(num_res_blocks)
            )
            last = level == len(ch_mult) - 1
            stage.attn = nn.ModuleList(AttnBlock(widths[level + 1]) if last else nn.Identity()
                                       for _ in range(num_res_blocks))
            stage.downsample = nn.Identity() if last else Downsample(widths[level + 1])
            self.down.append(stage)
        c = widths[-1]
        self.mid = nn.Sequential(ResnetBlock(c, c, dropout), AttnBlock(c), ResnetBlock(c, c, dropout))
        self.norm_out = norm(c)
        self.conv_out = nn.Conv2d(c, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for block, attn in zip(stage.block, stage.attn, strict=False):
                h = attn(block(h))
            h = stage.downsample(h)
        h = self.mid(h)
        z = self.conv_out(F.silu(self.norm_out(h)))
        return z if self.patch_skip is None else z + self.patch_skip(x)


class Decoder(nn.Module):
    """Latent (B, C, h, w) -> image (B, 3, h*f, w*f), unbounded (clamp to [-1, 1] for display)."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int,
                 dropout: float = 0.0, patch_skip: bool = False) -> None:
        super().__init__()
        f = 2 ** (len(ch_mult) - 1)
        self.patch_skip = nn.ConvTranspose2d(z_channels, 3, f, stride=f) if patch_skip else None
        widths = [ch * m for m in ch_mult]
        c = widths[-1]
        self.conv_in = nn.Conv2d(z_channels, c, 3, padding=1)
        self.mid = nn.Sequential(ResnetBlock(c, c, dropout), AttnBlock(c), ResnetBlock(c, c, dropout))
        self.up = nn.ModuleList()
        for level in reversed(range(len(ch_mult))):
            stage = nn.Module()
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(c, widths[level], dropout))
                c = widths[level]
            stage.block = nn.ModuleList(blocks)
            last = level == len(ch_mult) - 1
            stage.attn = nn.ModuleList(AttnBlock(c) if last else nn.Identity() for _ in blocks)
            stage.upsample = Upsample(c) if level > 0 else nn.Identity()
            self.up.append(stage)
        self.norm_out = norm(c)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in self.up:
            for block, attn in zip(stage.block, stage.attn, strict=False):
                h = attn(block(h))
            h = stage.upsample(h)
        x = self.conv_out(F.silu(self.norm_out(h)))
        return x if self.patch_skip is None else x + self.patch_skip(z)
