"""Contracts of the emoji dataset: captions, glyphs on white, a shuffled endless stream, clear errors."""

import numpy as np
import pytest
import torch

from hart.data import EmojiDataset, captioned_stream
from tokenizer.data.emoji import caption, find_emoji_font


@pytest.mark.parametrize("code, text", [
    (":grinning_face:", "grinning face"),
    (":woman_technologist_medium_skin_tone:", "woman technologist: medium skin tone"),
    (":thumbs_up_medium-dark_skin_tone:", "thumbs up: medium-dark skin tone"),
    (":red_apple:", "red apple"),
])
def test_caption_is_the_cldr_short_name(code, text):
    assert caption(code) == text


def test_missing_font_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("HART_EMOJI_FONT", raising=False)
    with pytest.raises(FileNotFoundError, match="fonts-noto-color-emoji"):
        find_emoji_font(tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(FileNotFoundError, match="make emoji-font"):
        EmojiDataset(64, font_path=tmp_path / "none.ttf")


@pytest.fixture(scope="module")
def emoji_data():
    try:
        return EmojiDataset(64)
    except FileNotFoundError:
        pytest.skip("Noto Color Emoji font not installed (make emoji-font)")


def test_every_emoji_once_per_pass_in_a_seeded_order(emoji_data):
    n = len(emoji_data)
    assert n > 3000 and len(set(emoji_data.names)) == n
    first_pass = [emoji_data[i][1] for i in range(n)]
    assert sorted(first_pass) == sorted(emoji_data.names)
    assert first_pass[:20] != emoji_data.names[:20]  # shuffled, not catalogue order
    assert [emoji_data[n + i][1] for i in range(20)] != first_pass[:20]  # a fresh order each pass
    again = EmojiDataset(64)
    assert all(torch.equal(again[i][0], emoji_data[i][0]) and again[i][1] == emoji_data[i][1] for i in (0, 7, n + 3))


def test_glyphs_are_centred_on_white_with_a_margin(emoji_data):
    j = emoji_data.names.index("red apple")
    img = np.asarray(emoji_data.image(j)).astype(int)
    assert img.shape == (64, 64, 3)
    assert (img[:2] >= 250).all() and (img[:, :2] >= 250).all()  # white margin
    centre = img[24:40, 24:40]
    assert centre[..., 0].mean() > centre[..., 1].mean() + 60  # a red apple is red in the middle


def test_captioned_stream_serves_emoji(emoji_data):
    stream = captioned_stream("emoji", 32)
    x, text = stream[0]
    assert x.shape == (3, 32, 32) and -1 <= x.min() and x.max() <= 1 and text in emoji_data.names


def test_item_key_names_the_emoji_so_trainers_may_cache_its_tokens(emoji_data):
    n = len(emoji_data)
    keys = [emoji_data.item_key(i) for i in range(n)]
    assert sorted(keys) == list(range(n))  # one pass shows every emoji once
    i, j = 0, n + [emoji_data.item_key(n + r) for r in range(n)].index(keys[0])  # emoji keys[0] again, next pass
    assert emoji_data.item_key(j) == keys[0]
    assert torch.equal(emoji_data[i][0], emoji_data[j][0]) and emoji_data[i][1] == emoji_data[j][1]
