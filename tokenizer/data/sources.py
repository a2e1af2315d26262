"""Parse data specifications (``shapes``, ``sklearn-samples``, a folder) into one image stream."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from tokenizer.data.images import ImageFolder, load_sklearn_samples
from tokenizer.data.shapes import ShapesDataset


class ImagesOnly:
    """Drop the captions of a (image, caption) stream."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dataset[index][0]


class Interleave:
    """Item i comes from source i % n (its item i // n): a fixed, resumable mixture."""

    def __init__(self, sources: Sequence) -> None:
        self.sources = list(sources)

    def __getitem__(self, index: int):
        n = len(self.sources)
        return self.sources[index % n][index // n]


def image_stream(specs: Sequence[str], size: int, seed: int = 0, max_zoom_out: float = 8.0):
    """An indexable stream of (3, size, size) images in [-1, 1] from data specifications.

    Each spec is ``shapes`` (docs/design.md section 7), ``emoji`` (Noto Color Emoji glyphs),
    ``sklearn-samples`` (scikit-learn's two sample photos) or the path of an image folder (random
    rescaled crops).
    """
    if not specs:
        raise ValueError("no training data given: pass --data shapes, --data sklearn-samples or --data FOLDER")
    sources = []
    for spec in specs:
        if spec == "shapes":
            sources.append(ImagesOnly(ShapesDataset(size=size, seed=seed)))
        elif spec == "emoji":
            from tokenizer.data.emoji import EmojiDataset

            sources.append(ImagesOnly(EmojiDataset(size=size, seed=seed)))
        elif spec == "sklearn-samples":
            sources.append(ImageFolder(load_sklearn_samples(), size, seed, max_zoom_out))
        else:
            sources.append(ImageFolder(spec, size, seed, max_zoom_out))
    return sources[0] if len(sources) == 1 else Interleave(sources)


class StepBatches(torch.utils.data.Sampler):
    """Infinite batch sampler: step s on rank r of w gets items (s*w + r)*B .. (s*w + r)*B + B-1.

    Starting at ``start_step`` resumes the exact sequence of batches.
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world: int = 1) -> None:
        self.batch_size, self.start_step, self.rank, self.world = batch_size, start_step, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1
