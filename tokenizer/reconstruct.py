"""Reconstruct photos through a tokenizer: discrete-only versus hybrid, with PSNR.

Used by ``hart reconstruct`` (the demo until the generator ships) and by the PSNR benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from tokenizer.data.images import to_pil, to_tensor
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
    img = Image.open(path).convert("RGB")
    W, H = img.size
    scale = size / min(W, H)
    img = img.resize((max(size, round(W * scale)), max(size, round(H * scale))), Image.Resampling.LANCZOS)
    W, H = img.size
    left, top = (W - size) // 2, (H - size) // 2
    return to_tensor(img.crop((left, top, left + size, top + size)))


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
    B, _, S, _ = rec.originals.shape
    grid = Image.new("RGB", (3 * S, B * S), (255, 255, 255))
    for i in range(B):
        for j, imgs in enumerate((rec.originals, rec.discrete, rec.hybrid)):
            grid.paste(to_pil(imgs[i]), (j * S, i * S))
    return grid
