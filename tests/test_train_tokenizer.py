"""Contracts of the tokenizer training loop: it learns, resumes exactly, and fails clearly."""

import json

import pytest
import torch

from hart.cli import main
from hart.training.state import load_training_state
from tokenizer import HybridTokenizer
from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer, codebook_stats, train_tokenizer


def tiny_run(out, **overrides) -> TokenizerTrainConfig:
    settings = dict(out_dir=str(out), data=("shapes",), model="tiny", steps=6, batch_size=4, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=3, ckpt_every=2, restart_every=2)
    settings.update(overrides)
    return TokenizerTrainConfig(**settings)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full = train_tokenizer(tiny_run(tmp_path / "full"))
    cfg = tiny_run(tmp_path / "split")
    assert TokenizerTrainer(cfg).run(until=3) is None
    resumed = TokenizerTrainer(cfg, resume=True)
    assert resumed.step == 3
    split = resumed.run()
    a = HybridTokenizer.from_pretrained(full).state_dict()
    b = HybridTokenizer.from_pretrained(split).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_writes_log_samples_checkpoint_and_a_loadable_model(tmp_path):
    final = train_tokenizer(tiny_run(tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in lines] == [1, 2, 3, 4, 5, 6]
    assert {row["path"] for row in lines} <= {"hybrid", "discrete"}
    assert all("ppl0" in row and "dead" in row for row in lines)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert (tmp_path / "checkpoint.safetensors").is_file()
    HybridTokenizer.from_pretrained(final)


def test_training_lowers_the_reconstruction_loss(tmp_path):
    cfg = tiny_run(tmp_path, steps=150, batch_size=8, log_every=1, sample_every=0, ckpt_every=0)
    trainer = TokenizerTrainer(cfg)
    trainer.run()
    rec = [row["rec"] for row in trainer.history]
    assert sum(rec[-10:]) / 10 < 0.5 * sum(rec[:10]) / 10


def test_resume_with_another_model_is_a_clear_error(tmp_path):
    TokenizerTrainer(tiny_run(tmp_path)).run(until=2)
    other = tiny_run(tmp_path, model="cpu-f8-64")
    with pytest.raises(RuntimeError, match="another model configuration"):
        TokenizerTrainer(other, resume=True)


def test_corrupt_checkpoint_is_a_clear_error_and_is_kept(tmp_path):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        TokenizerTrainer(tiny_run(tmp_path), resume=True)
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == b"garbage"


def test_codebook_stats_counts_perplexity_and_dead_codes():
    counts = torch.tensor([[4.0, 4.0, 0.0, 0.0], [8.0, 0.0, 0.0, 0.0]])
    stats = codebook_stats(counts)
    assert stats["ppl0"] == pytest.approx(2.0) and stats["ppl1"] == pytest.approx(1.0)
    assert stats["dead"] == 2


@pytest.mark.parametrize("overrides, message", [
    (dict(steps=0), "at least 1"), (dict(discrete_prob=1.5), "discrete_prob"),
    (dict(mixed_precision="fp8"), "mixed_precision"), (dict(lr=0.0), "lr"),
])
def test_invalid_training_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_run(tmp_path, **overrides)


def test_cli_trains_from_a_yaml_recipe_with_flag_overrides(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"out_dir: {tmp_path / 'run'}\nmodel: tiny\ndata: [shapes]\nsteps: 50\nbatch_size: 2\n")
    assert main(["train-tokenizer", "--config", str(recipe), "--steps", "2", "--sample-every", "0"]) == 0
    assert "saved tokenizer" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["steps"] == 2


def test_cli_reports_unknown_recipe_keys(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("out_dir: x\nlearning_rate: 1\n")
    assert main(["train-tokenizer", "--config", str(recipe)]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_patch_gan_joins_at_gan_start_and_trains_the_discriminator(tmp_path):
    cfg = tiny_run(tmp_path, steps=4, gan_weight=0.1, gan_start=2, sample_every=0)
    trainer = TokenizerTrainer(cfg)
    before = [p.detach().clone() for p in trainer.disc.parameters()]
    trainer.run(until=2)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.disc.parameters(), strict=True))
    trainer.run()
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.disc.parameters(), strict=True))
    state = load_training_state(tmp_path / "checkpoint.safetensors")
    assert state["disc"] is not None and state["disc_opt"] is not None


def test_training_on_an_image_folder(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    final = train_tokenizer(tiny_run(tmp_path / "run", data=(str(folder),), steps=2, sample_every=1))
    assert HybridTokenizer.from_pretrained(final).config.image_size == 16


def test_the_discriminator_steps_on_its_own_loss_only(tmp_path):
    """The generator's adversarial loss also reaches the discriminator's weights; those gradients
    must be dropped before the discriminator's step, else a huge gan_weight turns it around."""
    from tokenizer.losses import hinge_d_loss

    cfg = tiny_run(tmp_path, steps=1, gan_weight=1e6, gan_start=0, sample_every=0, lr=1e-2, warmup_steps=1)
    trainer = TokenizerTrainer(cfg)
    images = next(iter(trainer.loader()))
    with torch.no_grad():
        fake = trainer.model(images, use_residual=True).recon
        before = hinge_d_loss(trainer.disc(images), trainer.disc(fake)).item()
    trainer.train_step(images, use_residual=True)
    with torch.no_grad():
        after = hinge_d_loss(trainer.disc(images), trainer.disc(fake)).item()
    assert after < before
