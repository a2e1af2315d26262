"""Contracts of the diffusers-style call names: prompt=, negative_prompt, num_images_per_prompt,
guidance_scale, output_type, height/width and seed=None, beside the package's own names."""

import numpy as np
import pytest
import torch

from hart.pipeline import HARTPipeline
from hart.sampler import generate
from hart.seeding import prompt_generators

PROMPTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def pipe() -> HARTPipeline:
    return HARTPipeline.from_preset("tiny", seed=0)


def arrays(images):
    return np.stack([np.asarray(im) for im in images])


def test_prompt_keyword_and_guidance_scale_equal_the_package_names(pipe):
    ours = arrays(pipe(PROMPTS, seed=3, cfg_scale=2.5, progress=False).images)
    theirs = arrays(pipe(prompt=PROMPTS, seed=3, guidance_scale=3.5, progress=False).images)
    np.testing.assert_array_equal(ours, theirs)
    other = arrays(pipe(prompt=PROMPTS, seed=3, guidance_scale=1.0, progress=False).images)
    assert not np.array_equal(ours, other)


def test_num_images_per_prompt_repeats_each_prompt_in_order(pipe):
    many = arrays(pipe(PROMPTS, seed=1, num_images_per_prompt=3, progress=False).images)
    listed = arrays(pipe([p for p in PROMPTS for _ in range(3)], seed=1, progress=False).images)
    assert many.shape[0] == 6
    np.testing.assert_array_equal(many, listed)


def test_negative_prompt_replaces_the_empty_prompt_in_guidance(pipe):
    base = arrays(pipe(PROMPTS, seed=0, progress=False).images)
    empty = arrays(pipe(PROMPTS, seed=0, negative_prompt="", progress=False).images)
    np.testing.assert_array_equal(base, empty)
    negative = arrays(pipe(PROMPTS, seed=0, negative_prompt=["a green triangle", "blur"], progress=False).images)
    assert not np.array_equal(base, negative)
    one = arrays(pipe(PROMPTS[:1], seed=0, negative_prompt="a green triangle", progress=False).images)
    np.testing.assert_array_equal(one[0], negative[0])


def test_per_row_null_prefill_equals_the_cached_null_prefix(pipe):
    """The negative-prompt path prefills null rows with the prompts; given the empty prompt in every
    row it must draw what the cached one-row null prefix draws."""
    text, null = pipe._encode(PROMPTS, torch.float32), pipe._encode([""], torch.float32)
    rows = (null[0].expand(2, -1, -1), null[1].expand(2, -1))
    cached = generate(pipe.transformer, pipe.head, pipe.tokenizer, text, null, pipe.settings,
                      prompt_generators(0, 2), null_prefix=pipe._null_prefix(null))
    per_row = generate(pipe.transformer, pipe.head, pipe.tokenizer, text, rows, pipe.settings, prompt_generators(0, 2))
    torch.testing.assert_close(per_row, cached, atol=1e-4, rtol=0)


@pytest.mark.parametrize("output_type", ["np", "pt", "latent"])
def test_output_types(pipe, output_type):
    pil = arrays(pipe(PROMPTS, seed=2, progress=False).images)
    out = pipe(PROMPTS, seed=2, output_type=output_type, progress=False).images
    if output_type == "np":
        assert out.shape == (2, 16, 16, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        np.testing.assert_allclose(out * 255, pil, atol=0.51)
    elif output_type == "pt":
        assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 16, 16)
        np.testing.assert_allclose(out.permute(0, 2, 3, 1).numpy() * 255, pil, atol=0.51)
    else:
        C, h = pipe.tokenizer.config.latent_channels, pipe.transformer.config.patch_nums[-1]
        assert out.shape == (2, C, h, h)
        with torch.no_grad():
            decoded = pipe.tokenizer.decode_latent(out).clamp(-1, 1)
        np.testing.assert_allclose(((decoded + 1) * 127.5).permute(0, 2, 3, 1).numpy(), pil, atol=0.51)


def test_seed_none_follows_torch_manual_seed(pipe):
    torch.manual_seed(7)
    a = arrays(pipe(PROMPTS, seed=None, progress=False).images)
    torch.manual_seed(7)
    b = arrays(pipe(PROMPTS, seed=None, progress=False).images)
    torch.manual_seed(8)
    c = arrays(pipe(PROMPTS, seed=None, progress=False).images)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generator_list_covers_every_image(pipe):
    out = arrays(pipe(PROMPTS, num_images_per_prompt=2, generator=prompt_generators(4, 4), progress=False).images)
    np.testing.assert_array_equal(out, arrays(pipe(PROMPTS, num_images_per_prompt=2, seed=4, progress=False).images))
    with pytest.raises(ValueError, match="4"):
        pipe(PROMPTS, num_images_per_prompt=2, generator=prompt_generators(4, 2), progress=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"height": 32}, ValueError, "16 x 16 images only"),
    ({"width": 512}, ValueError, "omit height and width"),
    ({"guidance_scale": 0.5}, ValueError, "guidance_scale must be >= 1"),
    ({"guidance_scale": 2.0, "cfg_scale": 1.0}, TypeError, "not both"),
    ({"output_type": "jpeg"}, ValueError, "output_type"),
    ({"num_images_per_prompt": 0}, ValueError, "num_images_per_prompt"),
    ({"negative_prompt": ["only one"]}, ValueError, "one per prompt"),
    ({"seed": "7"}, TypeError, "seed must be an int"),
    ({"prompt": "twice"}, TypeError, "not both"),
    ({"steps": 4}, TypeError, "sampling settings are"),
])
def test_bad_diffusers_style_arguments_are_clear_errors(pipe, kwargs, error, message):
    with pytest.raises(error, match=message):
        pipe(PROMPTS, progress=False, **kwargs)


def test_height_and_width_of_the_model_size_are_accepted(pipe):
    assert pipe(PROMPTS[:1], height=16, width=16, progress=False).images[0].size == (16, 16)


def test_no_prompt_at_all_is_a_clear_error(pipe):
    with pytest.raises(TypeError, match="no prompts"):
        pipe(progress=False)
