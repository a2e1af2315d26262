"""Multi-scale residual vector quantizer with phi blending (VAR Sec. 3.2, Alg. 1 and 2).

For k = 1..K the residual ``f - f_hat`` is area-downsampled to p_k x p_k, each position is snapped
to its nearest codebook entry, and the codes are bicubic-upsampled back to p_K x p_K, blended by a
small 3x3 conv phi_k and added to ``f_hat``. After the last scale, ``f - f_hat`` is HART's
continuous residual (HART Sec. 3.1).

Departures from VAR: no EMA codebook; dead codes are restarted by the training loop through
``restart_codes`` (codebook collapse at the coarse scales is a known failure of VAR-style
quantizers), and usage is measured by the loop from the returned indices, so the module holds no
statistics of its own.

Shapes: B batch, C latent channels, V codebook size, p_k side of scale k, h = p_K latent side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class Phi(nn.Module):
    """phi(h) = (1 - r) h + r conv3x3(h): VAR's ``quant_resi`` blend."""

    def __init__(self, channels: int, resi_ratio: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.resi_ratio = resi_ratio

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * (1.0 - self.resi_ratio) + self.conv(h) * self.resi_ratio


@dataclass
class QuantizerOutput:
    """Result of ``MultiScaleQuantizer.forward``.

    f_hat: (B, C, h, w) sum of the blended codes of all scales, straight-through to f.
    indices: K long tensors (B, p_k, p_k).
    vq_loss: scalar codebook + beta * commitment loss, averaged over the scales.
    """

    f_hat: torch.Tensor
    indices: list[torch.Tensor]
    vq_loss: torch.Tensor


class MultiScaleQuantizer(nn.Module):
    def __init__(self, vocab_size: int, channels: int, patch_nums: tuple[int, ...],
                 quant_resi: float = 0.5, num_phis: int = 4, beta: float = 0.25) -> None:
        super().__init__()
        self.patch_nums = tuple(patch_nums)
        self.beta = beta
        self.embedding = nn.Embedding(vocab_size, channels)
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)
        self.phis = nn.ModuleList(Phi(channels, quant_resi) for _ in range(num_phis))
        # VAR's PhiPartiallyShared: phi i sits at tick i; scale k uses the phi nearest k/(K-1).
        n = num_phis
        self.phi_ticks = [1 / 3 / n + i * (1 - 2 / 3 / n) / max(n - 1, 1) for i in range(n)]

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def phi(self, k: int) -> Phi:
        """The blend conv of scale k (0-based)."""
        K = self.num_scales
        position = k / (K - 1) if K > 1 else 0.0
        nearest = min(range(len(self.phis)), key=lambda i: abs(self.phi_ticks[i] - position))
        return self.phis[nearest]

    def nearest_code(self, r: torch.Tensor) -> torch.Tensor:
        """Indices (B, p, p) of the codebook entries nearest (L2) to r (B, C, p, p)."""
        B, C, p, _ = r.shape
        r_NC = r.permute(0, 2, 3, 1).reshape(-1, C)
        e_VC = self.embedding.weight
        dist_NV = (r_NC.pow(2).sum(1, keepdim=True) - 2 * r_NC @ e_VC.T) + e_VC.pow(2).sum(1)
        return dist_NV.argmin(dim=1).view(B, p, p)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Codes (B, C, p, p) of indices (B, p, p)."""
        return self.embedding(idx).permute(0, 3, 1, 2)

    def blend(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """phi_k(upsample(z)) at the final resolution: the contribution of scale k to f_hat."""
        h = self.patch_nums[-1]
        if z.shape[-1] != h:
            z = F.interpolate(z, size=(h, h), mode="bicubic")
        return self.phi(k)(z)

    def forward(self, f: torch.Tensor) -> QuantizerOutput:
        """Quantize f (B, C, h, w) into K index maps (VAR Alg. 1)."""
        f_rest = f.detach().clone()
        f_hat = torch.zeros_like(f)
        indices, vq_loss = [], f.new_zeros(())
        for k, p in enumerate(self.patch_nums):
            r = F.interpolate(f_rest, size=(p, p), mode="area") if p != f.shape[-1] else f_rest
            idx = self.nearest_code(r)
            h = self.blend(k, self.lookup(idx))
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            indices.append(idx)
            # Codebook term trains codes and phis; commitment term pulls the encoder to the codes.
            vq_loss = vq_loss + F.mse_loss(f_hat, f.detach()) + self.beta * F.mse_loss(f_hat.detach(), f)
        vq_loss = vq_loss / self.num_scales
        f_hat_st = f + (f_hat - f).detach()  # straight-through estimator
        return QuantizerOutput(f_hat=f_hat_st, indices=indices, vq_loss=vq_loss)

    @torch.no_grad()
    def indices_to_f_hat(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """f_hat (B, C, h, w) from the K index maps."""
        f_hat = 0.0
        for k, idx in enumerate(indices):
            f_hat = f_hat + self.blend(k, self.lookup(idx))
        return f_hat

    def next_scale_input(self, k: int, f_hat: torch.Tensor, z: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One sampling step (VAR Alg. 2): add scale k's codes z (B, C, p_k, p_k) to f_hat.

        Returns the updated f_hat (B, C, h, w) and the transformer's input for scale k + 1,
        f_hat area-downsampled to p_{k+1} (B, C, p_{k+1}, p_{k+1}), or None after the last scale.
        """
        f_hat = f_hat + self.blend(k, z)
        if k == self.num_scales - 1:
            return f_hat, None
        p = self.patch_nums[k + 1]
        return f_hat, F.interpolate(f_hat, size=(p, p), mode="area")

    @torch.no_grad()
    def teacher_forcing_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Transformer inputs of scales 2..K from ground-truth indices.

        Returns (B, L - p_1^2, C) with L = sum p_k^2: the inputs of scale k + 1 are f_hat after
        scales 1..k, area-downsampled to p_{k+1} and flattened row-major, concatenated over k.
        """
        B = indices[0].shape[0]
        C = self.embedding.weight.shape[1]
        h = self.patch_nums[-1]
        f_hat = self.embedding.weight.new_zeros(B, C, h, h)
        inputs = []
        for k in range(self.num_scales - 1):
            f_hat, nxt = self.next_scale_input(k, f_hat, self.lookup(indices[k]))
            inputs.append(nxt.flatten(2).transpose(1, 2))
        return torch.cat(inputs, dim=1)

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, vectors: torch.Tensor) -> None:
        """Overwrite codebook rows ``dead`` (n,) with ``vectors`` (n, C), e.g. encoder outputs."""
        self.embedding.weight[dead] = vectors.to(self.embedding.weight.dtype)
