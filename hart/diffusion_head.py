"""Residual diffusion head: MAR's MLP with adaLN (docs/design.md section 4; MAR Sec. 3.3, HART Sec. 3.3).

Predicts the noise in a noisy residual token x_t (B, C) given the timestep and the per-token
condition z (B, D) from the transformer. The noise schedule, loss and sampler live in
``hart.diffusion``; this file holds only the network.

Shapes: N tokens (flattened batch x positions), C latent channels, W width, D condition width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hart.config import DiffusionHeadConfig

FREQ_DIM = 256  # sinusoidal timestep features (DiT/MAR)
MAX_PERIOD = 10000


def timestep_features(t: torch.Tensor, dim: int = FREQ_DIM) -> torch.Tensor:
    """Sinusoidal features (N, dim) of (possibly fractional) timesteps t (N,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(c).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.norm(x), shift, scale))


class DiffusionHead(nn.Module):
    def __init__(self, cfg: DiffusionHeadConfig) -> None:
        super().__init__()
        self.config = cfg
        W, C = cfg.width, cfg.latent_channels
        self.time_embed = nn.Sequential(nn.Linear(FREQ_DIM, W), nn.SiLU(), nn.Linear(W, W))
        self.cond_embed = nn.Linear(cfg.cond_dim, W)
        self.input_proj = nn.Linear(C, W)
        self.res_blocks = nn.ModuleList(ResBlock(W) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.final_adaLN = nn.Sequential(nn.SiLU(), nn.Linear(W, 2 * W))
        self.final_linear = nn.Linear(W, C)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # adaLN-Zero (DiT): every block and the output start as the identity / zero.
        for block in self.res_blocks:
            nn.init.zeros_(block.adaLN_modulation[1].weight)
        nn.init.zeros_(self.final_adaLN[1].weight)
        nn.init.zeros_(self.final_linear.weight)

    def forward(self, x_NC: torch.Tensor, t_N: torch.Tensor, z_ND: torch.Tensor) -> torch.Tensor:
        """Predicted noise (N, C) of x_t (N, C) at timesteps t (N,) under conditions z (N, D)."""
        x = self.input_proj(x_NC)
        c = self.time_embed(timestep_features(t_N).to(x.dtype)) + self.cond_embed(z_ND)
        for block in self.res_blocks:
            x = block(x, c)
        shift, scale = self.final_adaLN(c).chunk(2, dim=-1)
        return self.final_linear(modulate(self.final_norm(x), shift, scale))
