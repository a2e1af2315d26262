"""Tokenizer losses: reconstruction, PSNR and the optional patch-GAN (taming-transformers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images (B, 3, H, W) in [-1, 1] (peak-to-peak 2)."""
    mse = (x.float().clamp(-1, 1) - y.float().clamp(-1, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-10))


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, l1: float, l2: float) -> torch.Tensor:
    return l1 * F.l1_loss(recon, target) + l2 * F.mse_loss(recon, target)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): strided convs giving one real/fake logit per overlapping patch."""

    def __init__(self, ch: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for i in range(1, n_layers + 1):
            c_out = ch * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_out, 4, stride, 1, bias=False), nn.GroupNorm(1, c_out),
                       nn.LeakyReLU(0.2)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()
