"""Reconstruct photos through a tokenizer: discrete-only versus hybrid, with PSNR.

Used by ``hart reconstruct`` (the demo until the generator ships) and by the PSNR benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from tokenizer.data.images import center_square, image_grid, to_pil, to_tensor
from tokenizer.hybrid import HybridTokenizer
from tokenizer.losses import psnr

ASSETS_DIR = Path(__file__).parent / "assets"


def sample_photos() -> list[Path]:
    """The 128 px sample photos that install with the package (never seen in training)."""
    return sorted(ASSETS_DIR.glob("*.png"))


def load_square(path: str | Path, size: int) -> torch.Tensor:
    """Image file -> (3, size, size) in [-1, 1]: short side resized to ``size``, centre crop."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    return to_tensor(center_square(Image.open(path).convert("RGB"), size))


@dataclass
class Reconstruction:
    """originals, discrete-only and hybrid reconstructions (B, 3, S, S) with per-image PSNR (dB)."""

    originals: torch.Tensor
    discrete: torch.Tensor
    hybrid: torch.Tensor
    psnr_discrete: torch.Tensor
    psnr_hybrid: torch.Tensor


@torch.no_grad()
def reconstruct(tok: HybridTokenizer, images: torch.Tensor, batch_size: int = 16) -> Reconstruction:
    """Encode and decode images (B, 3, S, S) in [-1, 1] by both paths, in batches."""
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for chunk in images.split(batch_size):
        codes = tok.encode(chunk)
        parts.append((tok.decode(codes, use_residual=False), tok.decode(codes)))
    discrete = torch.cat([d for d, _ in parts])
    hybrid = torch.cat([h for _, h in parts])
    return Reconstruction(images, discrete, hybrid, psnr(discrete, images), psnr(hybrid, images))


def side_by_side(rec: Reconstruction) -> Image.Image:
    """One row per image: original | discrete-only | hybrid."""
    triples = zip(rec.originals, rec.discrete, rec.hybrid, strict=True)
    return image_grid([to_pil(x) for triple in triples for x in triple], cols=3)
