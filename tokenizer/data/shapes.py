"""Procedural captioned shapes (docs/design.md section 7): one object on a plain background.

Item i is drawn from ``numpy.random.default_rng([seed, i])``: the attributes are uniform over the
grammar, colours, sizes and positions are jittered, and edges are anti-aliased by drawing at
``SUPERSAMPLE`` times the size and downsampling with a box filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from tokenizer.data.images import to_tensor

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
COLORS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "purple": (150, 60, 200), "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.20, "large": 0.36}  # side as a fraction of the canvas
POSITIONS = {
    "top left": (0.25, 0.25), "top": (0.5, 0.25), "top right": (0.75, 0.25),
    "left": (0.25, 0.5), "center": (0.5, 0.5), "right": (0.75, 0.5),
    "bottom left": (0.25, 0.75), "bottom": (0.5, 0.75), "bottom right": (0.75, 0.75),
}
COLOR_JITTER = 12  # per channel, in 0..255 units
SIZE_JITTER = 0.08  # relative
POSITION_JITTER = 0.03  # fraction of the canvas
SUPERSAMPLE = 4


@dataclass(frozen=True)
class ShapeSpec:
    """The five attributes a caption names."""

    size: str
    color: str
    shape: str
    position: str
    background: str

    @property
    def caption(self) -> str:
        """The canonical caption, e.g. 'a large blue square at the center on a black background'."""
        return f"a {self.size} {self.color} {self.shape} at the {self.position} on a {self.background} background"


def render(spec: ShapeSpec, canvas: int, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw ``spec`` on a canvas x canvas RGB image; ``rng`` adds the jitter (None: no jitter)."""
    def jitter(scale: float) -> float:
        return float(rng.uniform(-scale, scale)) if rng is not None else 0.0

    big = canvas * SUPERSAMPLE
    img = Image.new("RGB", (big, big), BACKGROUNDS[spec.background])
    draw = ImageDraw.Draw(img)
    color = tuple(int(np.clip(c + round(jitter(COLOR_JITTER)), 0, 255)) for c in COLORS[spec.color])
    side = SIZES[spec.size] * (1.0 + jitter(SIZE_JITTER)) * big
    cx, cy = ((p + jitter(POSITION_JITTER)) * big for p in POSITIONS[spec.position])
    x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    if spec.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=color)
    elif spec.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=color)
    else:  # triangle, apex up, base = height = side
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=color)
    return img.resize((canvas, canvas), Image.Resampling.BOX)


class ShapesDataset:
    """Infinite, deterministic stream of (image (3, S, S) in [-1, 1], caption) pairs."""

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        if size < 8:
            raise ValueError(f"shapes canvas must be at least 8 pixels, got {size}")
        self.size, self.seed = size, seed

    def spec(self, index: int) -> ShapeSpec:
        rng = np.random.default_rng([self.seed, index, 0])
        return ShapeSpec(
            size=str(rng.choice(list(SIZES))), color=str(rng.choice(list(COLORS))),
            shape=str(rng.choice(SHAPES)), position=str(rng.choice(list(POSITIONS))),
            background=str(rng.choice(list(BACKGROUNDS))),
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        spec = self.spec(index)
        img = render(spec, self.size, np.random.default_rng([self.seed, index, 1]))
        return to_tensor(img), spec.caption
