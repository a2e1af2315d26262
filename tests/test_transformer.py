"""Contracts of the scale-wise AR transformer: cached = teacher-forced, block-causal, sizes."""

import pytest
import torch

from hart.config import TRANSFORMER_PRESETS, TransformerConfig
from hart.kv_cache import KVCache
from hart.rope import apply_rope, image_positions, rope_tables
from hart.transformer import HARTTransformer

CFG = TRANSFORMER_PRESETS["tiny"]
B, T = 2, 5


@pytest.fixture
def model() -> HARTTransformer:
    torch.manual_seed(0)
    return HARTTransformer(CFG).eval()


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    text = torch.randn(B, T, CFG.text_dim, generator=g)
    mask = torch.tensor([[False, False, True, True, True], [True] * T])  # left padding
    x = torch.randn(B, CFG.image_tokens - 1, CFG.latent_channels, generator=g)
    return text, mask, x


def cached_logits(model, text, mask, x):
    cache = KVCache(CFG.depth, B, CFG.heads, T + CFG.image_tokens, CFG.head_dim)
    logits, _, pooled = model.prefill(text, mask, cache)
    outs, first, rope = [logits], 1, model.rope(text.device)
    for k in range(1, CFG.num_scales):
        n = CFG.patch_nums[k] ** 2
        outs.append(model.decode_scale(k, x[:, first - 1:first - 1 + n], pooled, mask, cache, rope)[0])
        first += n
    return torch.cat(outs, dim=1)


def test_teacher_forced_shapes(model, inputs):
    logits, hidden = model(*inputs)
    assert logits.shape == (B, CFG.image_tokens, CFG.vocab_size)
    assert hidden.shape == (B, CFG.image_tokens, CFG.width)


def test_cached_scale_by_scale_logits_equal_the_full_forward(model, inputs):
    full, _ = model(*inputs)
    # Same math in another order: equal up to float32 rounding.
    torch.testing.assert_close(cached_logits(model, *inputs), full, atol=1e-5, rtol=1e-5)


def test_mask_is_block_causal(model, inputs):
    text, mask, x = inputs
    full, _ = model(text, mask, x)
    # Perturb the inputs of the last scale: logits of every earlier scale stay the same.
    last = CFG.patch_nums[-1] ** 2
    x2 = x.clone()
    x2[:, -last:] += 1.0
    perturbed, _ = model(text, mask, x2)
    torch.testing.assert_close(perturbed[:, :-last], full[:, :-last], atol=1e-6, rtol=0)
    assert not torch.allclose(perturbed[:, -last:], full[:, -last:])


def test_text_padding_is_masked(model, inputs):
    text, mask, x = inputs
    text2 = text.clone()
    text2[0, :2] = 100.0  # the padded positions of prompt 0
    a, _ = model(text, mask, x)
    b, _ = model(text2, mask, x)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_text_conditions_the_logits(model, inputs):
    text, mask, x = inputs
    a, _ = model(text, mask, x)
    b, _ = model(text.flip(0), mask.flip(0), x)
    assert not torch.allclose(a, b, atol=1e-4)


def test_rope_is_a_rotation_and_relative():
    pos = image_positions((1, 2, 4))
    cos, sin = rope_tables(pos, 8, 100.0)
    q = torch.randn(1, 1, len(pos), 8)
    rotated = apply_rope(q, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1))  # norms kept: a rotation
    # Dot products depend on the position difference only.
    a, b = torch.randn(8), torch.randn(8)
    p = torch.tensor([[0.0, 0.0], [1.0, 2.0], [5.0, 3.0], [6.0, 5.0]])
    c, s = rope_tables(p, 8, 100.0)
    ra = apply_rope(a.expand(1, 1, 4, 8), c, s)[0, 0]
    rb = apply_rope(b.expand(1, 1, 4, 8), c, s)[0, 0]
    torch.testing.assert_close(ra[0] @ rb[1], ra[2] @ rb[3], atol=1e-5, rtol=1e-5)


def test_coarse_and_fine_tokens_of_the_same_place_share_positions():
    pos = image_positions((1, 2))
    torch.testing.assert_close(pos[0], pos[1:].mean(0).double())


@pytest.mark.parametrize("name", ["hart-0.7b-256", "hart-0.7b-512", "hart-0.7b-1024"])
def test_full_size_presets_have_the_design_parameter_count(name):
    cfg = TRANSFORMER_PRESETS[name]
    assert (cfg.width, cfg.depth, cfg.heads, cfg.max_text_len) == (1536, 24, 24, 300)
    with torch.device("meta"):
        params = sum(p.numel() for p in HARTTransformer(cfg).parameters())
    assert 0.70e9 <= params <= 0.75e9, params


def test_kv_cache_overflow_is_a_clear_error():
    cache = KVCache(1, 1, 1, 4, 4)
    with pytest.raises(ValueError, match="holds 4 positions"):
        cache.update(0, 2, torch.zeros(1, 1, 3, 4), torch.zeros(1, 1, 3, 4))


def test_width_must_split_into_rotary_heads():
    with pytest.raises(ValueError, match="heads"):
        TransformerConfig(width=30, heads=4)
