"""Captioned emoji: the Noto Color Emoji glyphs on a white canvas, named by the ``emoji`` package.

Each fully-qualified emoji of ``emoji.EMOJI_DATA`` that the font draws as one glyph becomes one
item: the glyph is drawn at the font's only bitmap size (109), cropped to its ink, scaled to fit
the canvas minus a margin (Lanczos) and composited onto white. Its caption is the CLDR short name
from the package ("grinning face", "woman technologist: medium skin tone"). Emoji the font lacks
(newer than the font, or sequences it draws as several glyphs) are left out, so the set depends
on the font version; ``EmojiDataset.names`` lists what is in it.

The font comes from the Debian package ``fonts-noto-color-emoji``; see ``EMOJI_FONT_HELP``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from tokenizer.data.images import to_tensor

FONT_FILE = "NotoColorEmoji.ttf"
FONT_SIZE = 109  # the only size of the font's colour bitmaps (CBDT strike)
GLYPH_WIDTH = 136  # advance of one glyph at FONT_SIZE; wider drawings are several glyphs
MARGIN = 0.05  # free border on each side, as a fraction of the canvas
FETCHED_FONT = Path("data/fonts-noto-color-emoji/usr/share/fonts/truetype/noto") / FONT_FILE  # make emoji-font
FONT_SEARCH = (
    FETCHED_FONT,  # from the working directory
    Path(__file__).resolve().parents[2] / FETCHED_FONT,  # from a source checkout
    Path("/usr/share/fonts/truetype/noto") / FONT_FILE,  # apt-get install fonts-noto-color-emoji
)
EMOJI_FONT_HELP = (
    "install the Noto Color Emoji font: as root `apt-get install fonts-noto-color-emoji`, or without root "
    "`make emoji-font` (apt-get download + dpkg -x into data/), or pass its path (--font / HART_EMOJI_FONT)"
)
SKIN_TONE = re.compile(r" ((?:(?:medium-)?(?:light|dark)|medium) skin tone.*)$")


def find_emoji_font(path: str | os.PathLike | None = None) -> Path:
    """The font file: ``path``, else ``$HART_EMOJI_FONT``, else the usual install places."""
    candidates = [Path(path)] if path else [Path(p) for p in [os.environ.get("HART_EMOJI_FONT")] if p]
    candidates = candidates or list(FONT_SEARCH)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{FONT_FILE} not found (looked in {', '.join(map(str, candidates))}): {EMOJI_FONT_HELP}")


def caption(short_code: str) -> str:
    """':woman_technologist_medium_skin_tone:' -> 'woman technologist: medium skin tone'."""
    name = short_code.strip(":").replace("_", " ")
    return SKIN_TONE.sub(r": \1", name)


def draw_glyph(char: str, font: ImageFont.FreeTypeFont) -> Image.Image | None:
    """The glyph of ``char`` as RGBA cropped to its ink; None when the font draws it as several glyphs."""
    left, top, right, bottom = font.getbbox(char)
    if right - left > GLYPH_WIDTH * 1.2 or right <= left:
        return None
    img = Image.new("RGBA", (right + 8, bottom + 8), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((0, 0), char, font=font, embedded_color=True)
    ink = img.getchannel("A").getbbox()
    return img.crop(ink) if ink else None


def on_canvas(glyph: Image.Image, size: int) -> Image.Image:
    """Scale an RGBA glyph to fit ``size`` minus the margins, centred on white; RGB out."""
    room = size * (1 - 2 * MARGIN)
    scale = room / max(glyph.size)
    w, h = max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))
    small = glyph.resize((w, h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(small, ((size - w) // 2, (size - h) // 2))
    return canvas.convert("RGB")


@lru_cache(maxsize=4)
def _catalogue(font_path: str) -> tuple[tuple[str, str], ...]:
    """(char, caption) of every fully-qualified emoji the font draws as one glyph, in package order."""
    import emoji

    font = ImageFont.truetype(font_path, FONT_SIZE)
    qualified = emoji.STATUS["fully_qualified"]
    items, seen = [], set()
    for char, data in emoji.EMOJI_DATA.items():
        text = caption(data["en"])
        if data["status"] != qualified or text in seen or draw_glyph(char, font) is None:
            continue
        items.append((char, text))
        seen.add(text)
    return tuple(items)


class EmojiDataset:
    """(image (3, S, S) in [-1, 1], caption) of every emoji, as an endless shuffled stream.

    Item i is emoji ``order(i // N)[i % N]``: each pass over the N emoji is a fresh permutation
    drawn from ``seed`` (so consecutive items are not all skin tones of one emoji), and the same
    index always gives the same item (runs resume exactly). ``image(j)`` is emoji j itself.
    """

    def __init__(self, size: int = 64, font_path: str | os.PathLike | None = None, seed: int = 0) -> None:
        if size < 16:
            raise ValueError(f"emoji canvas must be at least 16 pixels, got {size}")
        self.size, self.font_path, self.seed = size, find_emoji_font(font_path), seed
        self.items = _catalogue(str(self.font_path))
        if not self.items:
            raise RuntimeError(f"{self.font_path} drew no emoji: is it the Noto Color Emoji font?")
        self._font: ImageFont.FreeTypeFont | None = None
        self._cache: dict[int, torch.Tensor] = {}  # 3789 x 3 x 64 x 64 floats: about 190 MB at most
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [text for _, text in self.items]

    def image(self, j: int) -> Image.Image:
        """Emoji ``j`` (catalogue order) as an RGB PIL image."""
        if self._font is None:
            self._font = ImageFont.truetype(str(self.font_path), FONT_SIZE)
        return on_canvas(draw_glyph(self.items[j][0], self._font), self.size)

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of the N emoji that pass ``epoch`` of the stream follows."""
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self))}
        return self._orders[epoch]

    def item_key(self, index: int) -> int:
        """Which emoji item ``index`` is: items with the same key are the same image and caption
        (no augmentation), so a trainer may cache what it computes from the image."""
        epoch, rank = divmod(index, len(self))
        return int(self.order(epoch)[rank])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        j = self.item_key(index)
        if j not in self._cache:
            self._cache[j] = to_tensor(self.image(j))
        return self._cache[j], self.items[j][1]

    def __getstate__(self) -> dict:  # data-loader workers rebuild the font handle
        return {**self.__dict__, "_font": None}
