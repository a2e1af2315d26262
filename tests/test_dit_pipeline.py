"""Contracts of the diffusion baseline's pipeline (tiny, random weights): diffusers schedulers,
seeding, save/load and the same errors as HARTPipeline for the same mistakes."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from hart.dit import DIT_PRESETS, DiTDenoiser  # noqa: E402
from hart.dit.pipeline import DiTPipeline, DiTSettings  # noqa: E402
from hart.pipeline import HARTPipeline  # noqa: E402

PROMPTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def pipe() -> DiTPipeline:
    return DiTPipeline.from_preset("tiny", seed=0)


def arrays(out):
    return np.stack([np.asarray(im) for im in out.images])


def test_cpu_preset_is_sized_like_the_hart_model_it_is_compared_to():
    dit = sum(p.numel() for p in DiTDenoiser(DIT_PRESETS["cpu-64"]).parameters())
    hart = HARTPipeline.from_preset("cpu-64", meta=True).param_counts()
    assert abs(dit / (hart["transformer"] + hart["diffusion_head"]) - 1) < 0.2


@pytest.mark.parametrize("scheduler, steps", [("dpm++", 4), ("ddim", 3)])
def test_schedulers_draw_repeatable_images_of_the_tokenizer_size(pipe, scheduler, steps):
    a = arrays(pipe(PROMPTS, seed=1, scheduler=scheduler, num_inference_steps=steps, progress=False))
    b = arrays(pipe(PROMPTS, seed=1, scheduler=scheduler, num_inference_steps=steps, progress=False))
    c = arrays(pipe(PROMPTS, seed=2, scheduler=scheduler, num_inference_steps=steps, progress=False))
    assert a.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_image_depends_on_its_own_seed_not_its_batch(pipe):
    alone = arrays(pipe(PROMPTS[1:], generator=[torch.Generator().manual_seed(5)], num_inference_steps=3,
                        progress=False))
    batch = arrays(pipe(PROMPTS, generator=[torch.Generator().manual_seed(9), torch.Generator().manual_seed(5)],
                        num_inference_steps=3, progress=False))
    np.testing.assert_allclose(alone[0].astype(int), batch[1].astype(int), atol=1)


def test_guidance_and_step_count_change_the_images(pipe):
    base = arrays(pipe(PROMPTS, seed=0, num_inference_steps=4, progress=False))
    assert not np.array_equal(base, arrays(pipe(PROMPTS, seed=0, num_inference_steps=4, cfg_scale=0.0,
                                                progress=False)))
    assert not np.array_equal(base, arrays(pipe(PROMPTS, seed=0, num_inference_steps=2, progress=False)))


def test_save_then_load_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "dit")
    loaded = DiTPipeline.from_pretrained(tmp_path / "dit")
    np.testing.assert_array_equal(arrays(pipe(PROMPTS, seed=3, num_inference_steps=3, progress=False)),
                                  arrays(loaded(PROMPTS, seed=3, num_inference_steps=3, progress=False)))


def test_loading_a_hart_model_as_a_baseline_is_a_clear_error():
    with pytest.raises(Exception, match="no denoiser"):
        DiTPipeline.from_pretrained("hart-shapes-64")


@pytest.mark.parametrize("prompts, kwargs, error, message", [
    ([], {}, ValueError, "non-empty"),
    (["ok", 5], {}, TypeError, "string"),
    (["ok"], {"cfg_scale": -1.0}, ValueError, "cfg_scale"),
    (["ok"], {"num_inference_steps": 0}, ValueError, "num_inference_steps"),
    (["ok"], {"scheduler": "euler"}, ValueError, "scheduler"),
    (["ok"], {"batch_size": 0}, ValueError, "batch_size"),
    (["ok"], {"guidance": 2.0}, TypeError, "guidance"),
])
def test_bad_input_gives_the_same_errors_as_hart(pipe, prompts, kwargs, error, message):
    with pytest.raises(error, match=message):
        pipe(prompts, progress=False, **kwargs)


def test_mismatched_tokenizer_is_refused(pipe):
    from tokenizer.config import PRESETS
    from tokenizer.hybrid import HybridTokenizer

    with pytest.raises(ValueError, match="does not match the tokenizer"):
        DiTPipeline(pipe.text_encoder, pipe.denoiser, HybridTokenizer(PRESETS["cpu-f8-64"]), pipe.text_spec)


def test_settings_are_checked():
    with pytest.raises(TypeError):
        DiTSettings(num_inference_steps=2.5)
