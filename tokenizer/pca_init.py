"""Patch-PCA initialisation of a tokenizer with ``patch_skip`` (see tokenizer.autoencoder).

The linear patch shortcuts are set to the principal components of f x f pixel patches of real
training images, the deep paths' output convs to zero and ``quant_conv`` / ``post_quant_conv`` to
the identity, so the untrained tokenizer's continuous path is exactly a patch PCA with C
components (36.7 dB on unseen 128 px photo tiles for C = 32, f = 8). Training then starts from a
good continuous autoencoder instead of noise; the deep paths learn what the linear code misses.

Shapes: N images (N, 3, H, W) in [-1, 1], f patch side, C latent channels, P = 3 f^2.
"""

from __future__ import annotations

import torch
from torch import nn


def image_patches(images: torch.Tensor, f: int) -> torch.Tensor:
    """All non-overlapping f x f patches of images (N, 3, H, W) as rows (M, 3 f^2), (c, y, x) order."""
    N, c, H, W = images.shape
    x = images.reshape(N, c, H // f, f, W // f, f).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, c * f * f)


@torch.no_grad()
def patch_pca_init_(model: nn.Module, images: torch.Tensor) -> float:
    """Initialise ``model`` (a HybridTokenizer with patch_skip) as a patch PCA of ``images``.

    Returns the fraction of the patch variance (about per-channel means) that the C components keep.
    """
    cfg = model.config
    if not cfg.patch_skip:
        raise ValueError("PCA initialisation needs a tokenizer config with patch_skip=True")
    f, C = cfg.downsample, cfg.latent_channels
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] % f or images.shape[-2] % f:
        raise ValueError(f"PCA initialisation needs images (N, 3, H, W) with H and W divisible by {f}, "
                         f"got {tuple(images.shape)}")
    patches = image_patches(images.float(), f)
    if patches.shape[0] < 3 * f * f:
        raise ValueError(f"PCA initialisation needs at least {3 * f * f} patches, got {patches.shape[0]}; "
                         "pass more images")
    mean_c = images.float().mean(dim=(0, 2, 3))  # (3,) colour mean, what a ConvTranspose bias can hold
    mean_P = mean_c.repeat_interleave(f * f)
    centred = patches - mean_P
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    W_CP = Vh[:C]  # (C, P) top principal directions
    kept = float(S[:C].pow(2).sum() / S.pow(2).sum())
    enc, dec = model.encoder, model.decoder
    enc.patch_skip.weight.copy_(W_CP.reshape(C, 3, f, f))
    enc.patch_skip.bias.copy_(-(W_CP @ mean_P))
    dec.patch_skip.weight.copy_(W_CP.reshape(C, 3, f, f))
    dec.patch_skip.bias.copy_(mean_c)
    for conv in (enc.conv_out, dec.conv_out):
        conv.weight.zero_()
        conv.bias.zero_()
    for conv in (model.quant_conv, model.post_quant_conv):
        nn.init.dirac_(conv.weight)
        conv.bias.zero_()
    return kept
