"""Captioned training data for the transformer (docs/design.md section 7).

``shapes`` is the procedural set of ``tokenizer.data.shapes``, ``emoji`` the Noto Color Emoji
glyphs named by the ``emoji`` package (``tokenizer.data.emoji``); a folder is an image-text folder:
images plus ``captions.jsonl`` lines ``{"file": ..., "text": ...}``, resized (short side) and
centre-cropped to the model's resolution. Item i is deterministic, so runs resume exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from tokenizer.data.emoji import EmojiDataset
from tokenizer.data.images import center_square, read_captions, to_tensor
from tokenizer.data.shapes import ShapesDataset

__all__ = ["CaptionedFolder", "EmojiDataset", "Indexed", "ShapesDataset", "captioned_stream", "collate"]


class CaptionedFolder:
    """(image (3, S, S) in [-1, 1], caption) of an image-text folder; item i is file i mod N."""

    def __init__(self, folder: str | Path, size: int) -> None:
        self.folder, self.size = Path(folder), size
        captions = read_captions(folder)
        if not captions:
            raise FileNotFoundError(f"{self.folder / 'captions.jsonl'} is missing or empty: an image-text folder "
                                    'holds images and captions.jsonl lines {"file": ..., "text": ...}')
        self.items = sorted(captions.items())
        missing = [f for f, _ in self.items if not (self.folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} captioned files are missing, e.g. {self.folder / missing[0]}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        name, text = self.items[index % len(self.items)]
        img = Image.open(self.folder / name).convert("RGB")
        return to_tensor(center_square(img, self.size, Image.Resampling.BICUBIC)), text


def captioned_stream(spec: str, size: int, seed: int = 0):
    """``shapes``, ``emoji`` or an image-text folder, as an indexable stream of (image, caption)."""
    if spec == "shapes":
        return ShapesDataset(size=size, seed=seed)
    if spec == "emoji":
        return EmojiDataset(size=size, seed=seed)
    return CaptionedFolder(spec, size)


class Indexed:
    """(index, image, caption) of a captioned stream: the trainer keys per-sample randomness by index."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, str]:
        return (index, *self.dataset[index])


def collate(batch: list[tuple[int, torch.Tensor, str]]) -> tuple[list[int], torch.Tensor, list[str]]:
    """Items of ``Indexed`` -> (stream indices, images (B, 3, S, S), captions)."""
    return [b[0] for b in batch], torch.stack([b[1] for b in batch]), [b[2] for b in batch]
