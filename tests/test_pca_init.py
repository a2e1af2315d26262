"""Contracts of patch_skip tokenizers, their patch-PCA initialisation and the fine-tune options."""

import dataclasses
import json

import pytest
import torch

from tokenizer import HybridTokenizer
from tokenizer.config import get_preset
from tokenizer.data.sources import image_stream
from tokenizer.pca_init import image_patches, patch_pca_init_
from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer


def skip_config(latent_channels: int):
    return dataclasses.replace(get_preset("tiny"), latent_channels=latent_channels, patch_skip=True)


def shapes_images(n: int = 16) -> torch.Tensor:
    data = image_stream(["shapes"], 16)
    return torch.stack([data[i] for i in range(n)])


def test_patches_are_rows_in_conv_weight_order():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    rows = image_patches(x, 2)
    assert rows.shape == (2 * 2 * 2, 12)
    # Patch (image 1, row 1, col 0) = x[1, :, 2:4, 0:2] flattened (c, y, x).
    assert torch.equal(rows[1 * 4 + 1 * 2 + 0], x[1, :, 2:4, 0:2].reshape(-1))


def test_full_rank_pca_init_reconstructs_images_exactly():
    torch.manual_seed(0)
    tok = HybridTokenizer(skip_config(latent_channels=12))  # f = 2: 3 * 2 * 2 = 12 components
    images = shapes_images()
    patch_pca_init_(tok, images)
    with torch.no_grad():
        recon = tok.decode_latent(tok.encode_latent(images))
    torch.testing.assert_close(recon, images, atol=1e-4, rtol=0)


def test_low_rank_pca_init_is_the_projection_on_the_top_components():
    torch.manual_seed(0)
    tok = HybridTokenizer(skip_config(latent_channels=4))
    images = shapes_images()
    kept = patch_pca_init_(tok, images)
    assert 0.0 < kept < 1.0
    rows = image_patches(images, 2)
    mean = images.mean(dim=(0, 2, 3)).repeat_interleave(4)
    _, _, Vh = torch.linalg.svd(rows - mean, full_matrices=False)
    expected = (rows - mean) @ Vh[:4].T @ Vh[:4] + mean
    with torch.no_grad():
        recon = tok.decode_latent(tok.encode_latent(images))
    torch.testing.assert_close(image_patches(recon, 2), expected, atol=1e-4, rtol=0)
    residual = ((rows - expected).pow(2).sum() / (rows - mean).pow(2).sum()).item()
    assert residual == pytest.approx(1.0 - kept, abs=1e-4)


def test_pca_init_needs_patch_skip_and_enough_patches():
    with pytest.raises(ValueError, match="patch_skip=True"):
        patch_pca_init_(HybridTokenizer(get_preset("tiny")), shapes_images())
    with pytest.raises(ValueError, match="at least 12 patches"):
        patch_pca_init_(HybridTokenizer(skip_config(4)), shapes_images(1)[:, :, :2, :2])


def test_configs_without_patch_skip_have_no_shortcut_weights():
    names = HybridTokenizer(get_preset("tiny")).state_dict().keys()
    assert not any("patch_skip" in n for n in names)
    with_skip = HybridTokenizer(skip_config(4)).state_dict().keys()
    assert {"encoder.patch_skip.weight", "decoder.patch_skip.weight"} <= with_skip


def skip_run(tmp_path, out: str, **overrides) -> TokenizerTrainConfig:
    model = tmp_path / "tiny-skip.json"
    model.write_text(json.dumps(skip_config(4).to_dict()))
    settings = dict(out_dir=str(tmp_path / out), data=("shapes",), model=str(model), steps=4, batch_size=4,
                    lr=3e-3, warmup_steps=1, log_every=1, sample_every=0, ckpt_every=0, restart_every=2)
    settings.update(overrides)
    return TokenizerTrainConfig(**settings)


def test_freeze_encoder_trains_only_codebook_and_decoder(tmp_path):
    first = TokenizerTrainer(skip_run(tmp_path, "a"))
    final = first.run()
    trainer = TokenizerTrainer(skip_run(tmp_path, "b", init_from=str(final), freeze=("encoder", "quant_conv"),
                                           vq_weight=1.0))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    end = trainer.model.state_dict()
    frozen = [k for k in start if k.startswith(("encoder.", "quant_conv."))]
    trained = [k for k in start if k.startswith(("decoder.", "quantizer.phis", "post_quant_conv."))]
    assert frozen and all(torch.equal(start[k], end[k]) for k in frozen)
    assert any(not torch.equal(start[k], end[k]) for k in trained)


def test_freeze_names_known_parts_and_leaves_something_to_train(tmp_path):
    with pytest.raises(ValueError, match="unknown parts"):
        skip_run(tmp_path, "a", freeze=("encoder", "codebook"))
    with pytest.raises(ValueError, match="nothing would train"):
        skip_run(tmp_path, "a", freeze=("encoder", "quant_conv", "quantizer", "post_quant_conv", "decoder"))


def test_init_from_loads_checkpoint_or_saved_weights(tmp_path):
    first = TokenizerTrainer(skip_run(tmp_path, "a"))
    final = first.run()
    source = HybridTokenizer.from_pretrained(final).state_dict()
    for origin in (str(final), str(tmp_path / "a"), str(tmp_path / "a" / "checkpoint.safetensors")):
        trainer = TokenizerTrainer(skip_run(tmp_path, "b", init_from=origin))
        state = trainer.model.state_dict()
        assert all(torch.equal(state[k], source[k]) for k in source), origin
        assert trainer.step == 0


def test_init_from_another_model_or_with_pca_is_a_clear_error(tmp_path):
    final = TokenizerTrainer(skip_run(tmp_path, "a")).run()
    with pytest.raises(RuntimeError, match="another model configuration"):
        TokenizerTrainer(skip_run(tmp_path, "b", init_from=str(final), model="tiny"))
    with pytest.raises(ValueError, match="not both"):
        skip_run(tmp_path, "c", init_from=str(final), pca_init_images=8)


def test_pca_init_images_start_the_run_as_a_patch_pca(tmp_path):
    trainer = TokenizerTrainer(skip_run(tmp_path, "a", pca_init_images=8))
    assert 0.0 < trainer.pca_kept < 1.0
    model = trainer.model
    assert model.encoder.conv_out.weight.abs().sum() == 0 and model.decoder.conv_out.weight.abs().sum() == 0


def test_cli_takes_the_staged_training_flags(tmp_path):
    from hart.cli import main

    model = tmp_path / "tiny-skip.json"
    model.write_text(json.dumps(skip_config(4).to_dict()))
    common = ["train-tokenizer", "--data", "shapes", "--model", str(model), "--steps", "2", "--batch-size", "4",
              "--sample-every", "0", "--log-every", "1"]
    assert main([*common, "--out-dir", str(tmp_path / "a"), "--pca-init-images", "8"]) == 0
    assert main([*common, "--out-dir", str(tmp_path / "b"), "--init-from", str(tmp_path / "a" / "final"),
                 "--freeze", "encoder", "quant_conv"]) == 0
    saved = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert saved["freeze"] == ["encoder", "quant_conv"] and saved["init_from"] == str(tmp_path / "a" / "final")
    a = HybridTokenizer.from_pretrained(tmp_path / "a" / "final").state_dict()
    b = HybridTokenizer.from_pretrained(tmp_path / "b" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("encoder."))
