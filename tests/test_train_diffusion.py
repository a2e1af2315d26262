"""Contracts of ``hart train-diffusion`` (tiny): it learns, resumes exactly, saves a loadable pipeline."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from hart.cli import main  # noqa: E402
from hart.dit.pipeline import DiTPipeline  # noqa: E402
from hart.dit.train import DiTTrainConfig, DiTTrainer, train_diffusion  # noqa: E402
from hart.training.state import load_training_state, save_training_state  # noqa: E402


def tiny_run(out, **overrides) -> DiTTrainConfig:
    settings = dict(out_dir=str(out), preset="tiny", data="shapes", steps=6, batch_size=4, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=3, ckpt_every=2, sample_prompts=("a red circle",))
    settings.update(overrides)
    return DiTTrainConfig(**settings)


def test_short_run_lowers_the_loss_and_saves_a_pipeline(tmp_path):
    cfg = tiny_run(tmp_path, steps=60, batch_size=8, lr=1e-2, sample_every=30, ckpt_every=0)
    trainer = DiTTrainer(cfg)
    final = trainer.run()
    loss = [r["diffusion"] for r in trainer.history]
    assert sum(loss[-10:]) / 10 < 0.8 * sum(loss[:10]) / 10
    assert (tmp_path / "samples" / "step_0000030.png").is_file()
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["step"] == 60
    pipe = DiTPipeline.from_pretrained(final)
    assert pipe.denoiser.config.latent_scale == pytest.approx(trainer.pipe.denoiser.config.latent_scale)
    assert pipe.denoiser.config.latent_scale != 1.0  # measured, not the preset's
    a = pipe(["a red circle"], seed=0, num_inference_steps=4, progress=False).images
    b = pipe(["a red circle"], seed=0, num_inference_steps=4, progress=False).images
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full = train_diffusion(tiny_run(tmp_path / "full"))
    cfg = tiny_run(tmp_path / "split")
    assert DiTTrainer(cfg).run(until=4) is None
    resumed = DiTTrainer(cfg, resume=True)
    assert resumed.step == 4
    split = resumed.run()
    sa = DiTPipeline.from_pretrained(full).denoiser.state_dict()
    sb = DiTPipeline.from_pretrained(split).denoiser.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_hart_checkpoint_is_not_resumed_as_a_baseline(tmp_path):
    DiTTrainer(tiny_run(tmp_path)).run(until=2)
    state = load_training_state(tmp_path / "checkpoint.safetensors")
    state["kind"] = "hart"
    save_training_state(tmp_path / "checkpoint.safetensors", state)
    with pytest.raises(RuntimeError, match="train-diffusion"):
        DiTTrainer(tiny_run(tmp_path), resume=True)


def test_cli_trains_and_reports_bad_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train-diffusion", "--out-dir", str(out), "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                 "--sample-every", "0", "--ckpt-every", "0"]) == 0
    assert (out / "final" / "denoiser" / "model.safetensors").is_file()
    assert main(["train-diffusion", "--out-dir", str(tmp_path / "x"), "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
