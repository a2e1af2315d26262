"""A deterministic pixel-analysis judge for shapes images: which five attributes does a picture show?

Used to score how well a generator follows shapes prompts (benchmarks/shapes_accuracy.py). No
learned model: the background is the median of the border pixels, the object is every pixel far
from it, its colour is the nearest palette colour to the median object pixel, and its coverage
(alpha, 0..1 per pixel, from projecting each pixel onto the background->object colour line) gives
sub-pixel width, height, area and centre. A triangle (apex up) has its centre of mass a sixth of
its height below the centre of its extent, a circle or a square none (this survives blur, which
rounds corners); the fill ratio area / (width x height) tells circle (pi/4) from square (1); the
larger extent gives the size, and the extent centre snapped to the 3x3 grid the position. On
rendered shapes it is exact (tests/test_shapes_judge.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tokenizer.data.shapes import BACKGROUNDS, COLORS, POSITIONS, SIZES, ShapeSpec

ATTRIBUTES = ("size", "color", "shape", "position", "background")
OBJECT_THRESHOLD = 64.0  # max |channel - background| (0..255) above which a pixel is object
MIN_OBJECT_PIXELS = 4  # fewer object pixels than this: no object in the picture
# Centre-of-mass drop below the extent centre, as a fraction of the height: 1/6 for an apex-up
# triangle, 0 for circles and squares; cut half-way. Fill ratios: circle pi/4, square 1.
TRIANGLE_DROP_ABOVE = 1 / 12
CIRCLE_BELOW = (np.pi / 4 + 1.0) / 2
SIZE_CUT = float(np.sqrt(SIZES["small"] * SIZES["large"]))  # geometric mean of the two side fractions


@dataclass(frozen=True)
class Judgement:
    """What the judge saw: the attributes (None when no object was found) and the measurements."""

    spec: ShapeSpec | None
    side: float = 0.0  # larger extent, fraction of the canvas
    fill: float = 0.0  # area / (width x height)
    drop: float = 0.0  # (centre of mass - extent centre) / height, downwards
    centre: tuple[float, float] = (0.0, 0.0)  # (x, y), fractions of the canvas

    def matches(self, spec: ShapeSpec) -> dict[str, bool]:
        """Attribute by attribute, does the picture show ``spec``? (all False when no object)."""
        return {name: self.spec is not None and getattr(self.spec, name) == getattr(spec, name)
                for name in ATTRIBUTES}


def _nearest(value: np.ndarray, table: dict[str, tuple]) -> str:
    return min(table, key=lambda name: float(np.sum((value - np.asarray(table[name], dtype=np.float64)) ** 2)))


def judge(image: Image.Image | np.ndarray) -> Judgement:
    """Attributes of a shapes picture: ``image`` is a PIL image or an (H, W, 3) uint8 array."""
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"judge expects a square RGB image, got an array of shape {rgb.shape}")
    size = rgb.shape[0]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    bg = np.median(border, axis=0)
    background = "white" if bg.mean() > 127.5 else "black"
    bg = np.asarray(BACKGROUNDS[background], dtype=np.float64)

    mask = np.abs(rgb - bg).max(axis=2) > OBJECT_THRESHOLD
    if mask.sum() < MIN_OBJECT_PIXELS:
        return Judgement(None)
    color = _nearest(np.median(rgb[mask], axis=0), COLORS)

    # Coverage of each pixel by the object: its position on the background -> object colour line.
    direction = np.median(rgb[mask], axis=0) - bg
    alpha = np.clip((rgb - bg) @ direction / float(direction @ direction), 0.0, 1.0)
    alpha = np.where(_grow(mask), alpha, 0.0)  # ignore faint noise far from the object
    cols, rows = alpha.max(axis=0), alpha.max(axis=1)
    width, height = float(cols.sum()), float(rows.sum())
    fill = float(alpha.sum()) / max(width * height, 1e-6)
    mass_y = float((alpha.sum(axis=1) * (np.arange(size) + 0.5)).sum() / max(alpha.sum(), 1e-6))
    drop = (mass_y - _extent_centre(rows)) / max(height, 1e-6)
    shape = "triangle" if drop > TRIANGLE_DROP_ABOVE else "circle" if fill < CIRCLE_BELOW else "square"
    side = max(width, height) / size
    centre = (_extent_centre(cols) / size, _extent_centre(rows) / size)
    position = min(POSITIONS, key=lambda p: (POSITIONS[p][0] - centre[0]) ** 2 + (POSITIONS[p][1] - centre[1]) ** 2)
    spec = ShapeSpec("small" if side < SIZE_CUT else "large", color, shape, position, background)
    return Judgement(spec, side, fill, drop, centre)


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask dilated by one pixel (anti-aliased edge pixels sit just outside the threshold)."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


def _extent_centre(profile: np.ndarray) -> float:
    """Centre of a 1-D coverage profile's extent, in pixels (edges at the coverage-weighted ends)."""
    inside = np.flatnonzero(profile > 0.5)
    if len(inside) == 0:
        inside = np.array([int(profile.argmax())])
    first, last = int(inside[0]), int(inside[-1])
    left = first - float(profile[first - 1]) if first > 0 else float(first)
    right = last + 1 + (float(profile[last + 1]) if last + 1 < len(profile) else 0.0)
    return (left + right) / 2



def accuracy(images: list[Image.Image], specs: list[ShapeSpec]) -> dict[str, float]:
    """Fraction of images showing each prompted attribute, and ``all``: all five at once."""
    if len(images) != len(specs) or not images:
        raise ValueError(f"need as many images as specs (and at least one), got {len(images)} and {len(specs)}")
    hits = [judge(img).matches(spec) for img, spec in zip(images, specs, strict=True)]
    scores = {name: sum(h[name] for h in hits) / len(hits) for name in ATTRIBUTES}
    scores["all"] = sum(all(h.values()) for h in hits) / len(hits)
    return scores
