"""Token maps of fixed training images, computed once: the frozen tokenizer's encode is a sizeable
part of a training step (its convolutions), and a data set without augmentation (emoji: 3,789
fixed glyphs) shows the same images again and again.

A data set opts in with ``item_key(index)``: items with the same key are the same image. Each new
image is encoded alone, so its tokens do not depend on which batch it first appeared in (batched
convolutions round differently), and a resumed run, which meets the images in other batches,
trains on exactly the same tokens.
"""

from __future__ import annotations

import torch

from tokenizer.hybrid import HybridCodes, HybridTokenizer

MAX_ENTRIES = 200_000  # ~5 KB each for the 64 px presets; the memo is cleared beyond this


class TokenCache:
    """``encode(items, images)`` -> ``HybridCodes`` of the batch, from the memo where possible."""

    def __init__(self, tokenizer: HybridTokenizer, data) -> None:
        self.tokenizer, self.data = tokenizer, data
        self.codes: dict[object, tuple[list[torch.Tensor], torch.Tensor]] = {}  # key -> (indices (p, p), (C, h, h))

    @staticmethod
    def applies_to(data) -> bool:
        return callable(getattr(data, "item_key", None))

    @torch.no_grad()
    def encode(self, items: list[int], images_B3HW: torch.Tensor) -> HybridCodes:
        keys = [self.data.item_key(i) for i in items]
        if len(self.codes) + len(keys) > MAX_ENTRIES:
            self.codes.clear()
        for b, key in enumerate(keys):
            if key not in self.codes:
                one = self.tokenizer.encode(images_B3HW[b:b + 1])
                self.codes[key] = ([idx[0] for idx in one.indices], one.residual[0])
        rows = [self.codes[k] for k in keys]
        K = len(rows[0][0])
        return HybridCodes(indices=[torch.stack([r[0][k] for r in rows]) for k in range(K)],
                           residual=torch.stack([r[1] for r in rows]))
