"""Contracts of the HybridTokenizer API: shapes, hybrid split, save/load and input errors."""

import json

import pytest
import torch

from tokenizer import PRESETS, HybridCodes, HybridTokenizer, TokenizerConfig
from tokenizer.checkpoint import CheckpointError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_encode_decode_shapes_of_every_preset_on_meta(name):
    cfg = PRESETS[name]
    with torch.device("meta"):
        tok = HybridTokenizer(cfg)
        images = torch.empty(2, 3, cfg.image_size, cfg.image_size)
        codes = tok.encode(images)
        out = tok.decode(codes)
    assert [tuple(i.shape) for i in codes.indices] == [(2, p, p) for p in cfg.patch_nums]
    assert tuple(codes.residual.shape) == (2, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    assert tuple(out.shape) == (2, 3, cfg.image_size, cfg.image_size)


@pytest.mark.parametrize("name", ["hart-256", "hart-512", "hart-1024"])
def test_full_size_tokenizer_matches_the_design(name):
    cfg = PRESETS[name]
    assert (cfg.vocab_size, cfg.latent_channels, cfg.ch, cfg.ch_mult) == (4096, 32, 160, (1, 1, 2, 2, 4))
    assert cfg.downsample == 16
    with torch.device("meta"):
        params = sum(p.numel() for p in HybridTokenizer(cfg).parameters())
    # VAR/HART's VQVAE at ch 160 has about 109M parameters (same for every resolution).
    assert 105e6 < params < 112e6, params


def test_hart_1024_has_the_fourteen_hart_scales():
    assert PRESETS["hart-1024"].patch_nums == (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)
    assert PRESETS["hart-1024"].tokens_per_image == sum(p * p for p in PRESETS["hart-1024"].patch_nums)


def test_hybrid_decode_equals_decoding_the_continuous_latent(tiny_tokenizer, tiny_images):
    tok = tiny_tokenizer
    codes = tok.encode(tiny_images)
    with torch.no_grad():
        f = tok.encode_latent(tiny_images)
        expected = tok.decode_latent(f).clamp(-1, 1)
        f_hat = tok.quantizer.indices_to_f_hat(codes.indices)
    torch.testing.assert_close(f_hat + codes.residual, f, atol=1e-6, rtol=0)
    torch.testing.assert_close(tok.decode(codes), expected, atol=1e-5, rtol=0)
    discrete = tok.decode(codes, use_residual=False)
    assert not torch.allclose(discrete, expected, atol=1e-3)
    assert discrete.min() >= -1 and discrete.max() <= 1


def test_save_then_load_gives_identical_outputs(tiny_tokenizer, tiny_images, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["patch_nums"] == [1, 2, 4, 8]
    loaded = HybridTokenizer.from_pretrained(tmp_path / "tok")
    a, b = tiny_tokenizer.encode(tiny_images), loaded.encode(tiny_images)
    assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices, strict=False))
    assert torch.equal(a.residual, b.residual)
    assert torch.equal(tiny_tokenizer.decode(a), loaded.decode(b))


def test_save_overwrites_atomically_and_leaves_no_temp_files(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert all(p.stat().st_mode & 0o044 for p in tmp_path.iterdir())  # readable by others, not 0600


@pytest.mark.parametrize("images, message", [
    (torch.zeros(1, 4, 16, 16), "3 \\(RGB\\) channels"),
    (torch.zeros(1, 3, 15, 16), "not divisible"),
    (torch.zeros(1, 3, 32, 32), "takes 16x16"),
    (torch.full((1, 3, 16, 16), 2.0), "\\[-1, 1\\]"),
    (torch.full((1, 3, 16, 16), float("nan")), "NaN"),
    (torch.zeros(3, 16, 16), "\\(B, 3, H, W\\)"),
])
def test_bad_images_raise_a_clear_error(tiny_tokenizer, images, message):
    with pytest.raises(ValueError, match=message):
        tiny_tokenizer.encode(images)


def test_bad_codes_raise_a_clear_error(tiny_tokenizer, tiny_images):
    codes = tiny_tokenizer.encode(tiny_images)
    with pytest.raises(ValueError, match="index maps"):
        tiny_tokenizer.decode(HybridCodes(codes.indices[:-1], codes.residual))
    with pytest.raises(ValueError, match="residual"):
        tiny_tokenizer.decode(HybridCodes(codes.indices, codes.residual[:, :2]))


def test_missing_directory_names_the_shipped_models():
    with pytest.raises(FileNotFoundError, match="photo-f8"):
        HybridTokenizer.from_pretrained("no-such-tokenizer")


def test_missing_weight_file_is_a_clear_error(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file is missing"):
        HybridTokenizer.from_pretrained(tmp_path)


def test_corrupt_weight_file_is_a_clear_error(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        HybridTokenizer.from_pretrained(tmp_path)


def test_config_weights_mismatch_is_a_clear_error(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["ch"] = 16
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        HybridTokenizer.from_pretrained(tmp_path)


def test_unknown_config_key_is_a_clear_error(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["colour"] = "blue"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="colour"):
        HybridTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=18, ch_mult=(1, 2, 2)), "not divisible"),
    (dict(image_size=16, ch_mult=(1, 2), patch_nums=(1, 2, 4)), "must equal the latent size"),
    (dict(image_size=16, ch_mult=(1, 2), patch_nums=(2, 1, 8)), "strictly increasing"),
])
def test_invalid_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenizerConfig(**kwargs)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(KeyError, match="tiny"):
        HybridTokenizer.from_config("no-such-preset")


def test_shipped_photo_tokenizer_loads_offline_and_reconstructs():
    tok = HybridTokenizer.from_pretrained("photo-f8")
    assert tok.config.downsample == 8 and tok.config.image_size == 128
    from tokenizer.reconstruct import load_square, reconstruct, sample_photos

    images = torch.stack([load_square(p, 128) for p in sample_photos()])
    rec = reconstruct(tok, images)
    assert rec.hybrid.shape == images.shape
    # Trained, not random: an untrained tokenizer scores about 10 dB on these unseen photos. The
    # shipped weights score 25.0 dB discrete-only and 32.3 dB hybrid on them: the residual path
    # must keep its clear lead (benchmarks/tokenizer_psnr.py measures the targets on 130 tiles).
    assert rec.psnr_discrete.mean() > 22.0
    assert rec.psnr_hybrid.mean() > 30.0 and rec.psnr_hybrid.mean() > rec.psnr_discrete.mean() + 4.0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_group_norms_never_normalise_single_channels(name):
    # Instance norm (one channel per group) erases each channel's mean: flat colours are lost.
    with torch.device("meta"):
        norms = [m for m in HybridTokenizer(PRESETS[name]).modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_channels // m.num_groups >= 2 for m in norms)
    if PRESETS[name].ch >= 128:  # the full-size model keeps VAR's 32 groups
        assert all(m.num_groups == 32 for m in norms)


def test_nan_weights_are_an_error_naming_the_component_not_nan_images(tiny_tokenizer, tiny_images):
    from tokenizer.finite import NonFiniteError

    codes = tiny_tokenizer.encode(tiny_images)
    with torch.no_grad():
        tiny_tokenizer.decoder.conv_out.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="tokenizer decoder"):
        tiny_tokenizer.decode(codes)
    with torch.no_grad():
        tiny_tokenizer.quant_conv.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="tokenizer encoder"):
        tiny_tokenizer.encode(tiny_images)
