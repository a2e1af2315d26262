"""Contracts of the unified sampler: cached = naive, seeds, settings validation."""

import pytest
import torch

from hart.config import HEAD_PRESETS, TRANSFORMER_PRESETS
from hart.diffusion_head import DiffusionHead
from hart.sampler import SamplingSettings, generate, sample_logits
from hart.transformer import HARTTransformer
from tokenizer import HybridTokenizer


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    ar = HARTTransformer(TRANSFORMER_PRESETS["tiny"]).eval()
    head = DiffusionHead(HEAD_PRESETS["tiny"]).eval()
    torch.nn.init.normal_(head.final_linear.weight, std=0.1)  # a head that is not the zero map
    tok = HybridTokenizer.from_config("tiny").eval()
    g = torch.Generator().manual_seed(2)
    text = (torch.randn(2, 5, 16, generator=g), torch.tensor([[False, True, True, True, True], [True] * 5]))
    null = (torch.randn(1, 2, 16, generator=g), torch.tensor([[True, True]]))
    return ar, head, tok, text, null


def run(parts, seed, **kwargs):
    ar, head, tok, text, null = parts
    settings = SamplingSettings(**{"cfg_scale": 2.0, "top_k": 10, "top_p": 0.9, **kwargs.pop("settings", {})})
    return generate(ar, head, tok, text, null, settings, torch.Generator().manual_seed(seed), **kwargs)


def test_cached_and_naive_sampling_give_the_same_images(parts):
    torch.testing.assert_close(run(parts, 0), run(parts, 0, use_cache=False), atol=1e-5, rtol=0)


def test_same_seed_same_image_different_seed_different_image(parts):
    a, b, c = run(parts, 0), run(parts, 0), run(parts, 1)
    assert a.shape == (2, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_residual_refinement_changes_the_image(parts):
    assert not torch.allclose(run(parts, 0), run(parts, 0, use_residual=False))


def test_no_guidance_runs_without_the_null_batch(parts):
    assert run(parts, 0, settings={"cfg_scale": 0.0}).shape == (2, 3, 16, 16)


def test_top_k_one_is_greedy():
    logits = torch.randn(3, 7, 11)
    idx = sample_logits(logits, top_k=1, top_p=1.0, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, logits.argmax(-1))


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_logits(logits, 0, 0.7, 1.0, g) for _ in range(200)])
    assert set(draws.unique().tolist()) == {0, 1}


@pytest.mark.parametrize("kwargs, message", [
    (dict(cfg_scale=-1), "cfg_scale"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(diffusion_steps=0), "diffusion_steps"), (dict(temperature=0), "temperature"), (dict(top_k=-1), "top_k"),
])
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**kwargs)


def test_a_kept_null_prefix_gives_the_same_images_as_one_computed_per_call(parts):
    from hart.sampler import NullPrefix

    ar, head, tok, text, null = parts
    prefix = NullPrefix.compute(ar, null)
    torch.testing.assert_close(run(parts, 0, null_prefix=prefix), run(parts, 0), atol=0, rtol=0)


def test_null_prompt_longer_than_the_prompts_is_padded_the_same_in_cached_and_naive_paths(parts):
    ar, head, tok, text, _ = parts
    long_null = (torch.randn(1, 7, 16, generator=torch.Generator().manual_seed(5)),
                 torch.tensor([[False] + [True] * 6]))
    parts = (ar, head, tok, text, long_null)
    torch.testing.assert_close(run(parts, 0), run(parts, 0, use_cache=False), atol=1e-5, rtol=0)
