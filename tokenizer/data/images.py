"""Real images: random rescaled crops from a folder or from scikit-learn's sample photos.

Item i picks an image, a scale and a crop window from ``numpy.random.default_rng([seed, i])``:
the image is resized so that its short side is log-uniform in [size, size * max_zoom_out]
(bounded by the original), a size x size window is cut at random and flipped with
probability 0.5. Decoded images are cached in memory (up to ``cache_images``), which suits the
small photo collections the shipped tokenizer trains on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float tensor (3, H, W) in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def to_pil(x: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [-1, 1] -> PIL RGB image."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def center_square(img: Image.Image, size: int,
                  resample: Image.Resampling = Image.Resampling.LANCZOS) -> Image.Image:
    """Resize so the short side is ``size``, then cut the centre size x size square."""
    W, H = img.size
    scale = size / min(W, H)
    img = img.resize((max(size, round(W * scale)), max(size, round(H * scale))), resample)
    W, H = img.size
    left, top = (W - size) // 2, (H - size) // 2
    return img.crop((left, top, left + size, top + size))


def image_grid(images: list[Image.Image], cols: int) -> Image.Image:
    """Paste equally sized images row-major into a grid of ``cols`` columns on white."""
    W, H = images[0].size
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (W * cols, H * rows), (255, 255, 255))
    for i, img in enumerate(images):
        grid.paste(img, ((i % cols) * W, (i // cols) * H))
    return grid


def load_sklearn_samples() -> list[Image.Image]:
    """The two photographs scikit-learn ships (china.jpg, flower.jpg), offline."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as e:
        raise ImportError("the 'sklearn-samples' data needs scikit-learn: pip install scikit-learn") from e
    return [Image.fromarray(a) for a in load_sample_images().images]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    return files


def read_captions(folder: str | Path) -> dict[str, str]:
    """``captions.jsonl`` of an image-text folder: {"file": ..., "text": ...} per line."""
    path = Path(folder) / "captions.jsonl"
    if not path.is_file():
        return {}
    captions = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                captions[row["file"]] = row["text"]
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{path}:{n} must be a JSON object with 'file' and 'text' ({e})") from e
    return captions


class ImageFolder:
    """Random rescaled crops (3, size, size) in [-1, 1] of a list of images or of a folder's."""

    def __init__(self, source: str | Path | list[Image.Image], size: int, seed: int = 0,
                 max_zoom_out: float = 8.0, cache_images: int = 64) -> None:
        if isinstance(source, list):
            self.files: list[Path | Image.Image] = list(source)
        else:
            self.files = list(list_images(source))
        self.size, self.seed, self.max_zoom_out = size, seed, max_zoom_out
        self.cache_images = cache_images
        self.cache: dict[int, Image.Image] = {}

    def image(self, j: int) -> Image.Image:
        item = self.files[j]
        if isinstance(item, Image.Image):
            return item.convert("RGB")
        if j in self.cache:
            return self.cache[j]
        img = Image.open(item).convert("RGB")
        if len(self.cache) < self.cache_images:
            self.cache[j] = img
        return img

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        img = self.image(int(rng.integers(len(self.files))))
        W, H = img.size
        short = min(W, H)
        if short < self.size:
            raise ValueError(f"image {self.files[index % len(self.files)]} is smaller than {self.size} px")
        hi = min(short, self.size * self.max_zoom_out)
        target = math.exp(rng.uniform(math.log(self.size), math.log(hi)))
        # Cut the source window (side short * size / target) first, then resize it to size x size:
        # far cheaper than resizing whole photos.
        side = min(short, short * self.size / target)
        x0, y0 = rng.uniform(0, W - side), rng.uniform(0, H - side)
        crop = img.resize((self.size, self.size), Image.Resampling.BICUBIC,
                          box=(x0, y0, x0 + side, y0 + side))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(crop)
