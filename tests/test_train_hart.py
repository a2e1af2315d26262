"""Contracts of stage-2 training: it learns, resumes exactly, saves a loadable pipeline."""

import json

import pytest
import torch

from hart.pipeline import HARTPipeline
from hart.train import HARTTrainConfig, HARTTrainer, train_hart
from hart.training.state import load_training_state, save_training_state


def tiny_run(out, **overrides) -> HARTTrainConfig:
    settings = dict(out_dir=str(out), preset="tiny", data="shapes", steps=6, batch_size=4, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=3, ckpt_every=2, sample_prompts=("a red circle",))
    settings.update(overrides)
    return HARTTrainConfig(**settings)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    full = train_hart(tiny_run(tmp_path / "full"))
    cfg = tiny_run(tmp_path / "split")
    assert HARTTrainer(cfg).run(until=4) is None
    resumed = HARTTrainer(cfg, resume=True)
    assert resumed.step == 4
    split = resumed.run()
    pa, pb = HARTPipeline.from_pretrained(full), HARTPipeline.from_pretrained(split)
    for ma, mb in ((pa.transformer, pb.transformer), (pa.head, pb.head)):
        sa, sb = ma.state_dict(), mb.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_short_run_lowers_both_losses_and_saves_a_pipeline(tmp_path):
    cfg = tiny_run(tmp_path, steps=80, batch_size=8, sample_every=40, ckpt_every=0, log_every=1)
    trainer = HARTTrainer(cfg)
    final = trainer.run()
    ce = [r["ce"] for r in trainer.history]
    diff = [r["diffusion"] for r in trainer.history]
    assert sum(ce[-10:]) / 10 < 0.8 * sum(ce[:10]) / 10
    assert sum(diff[-10:]) / 10 < 0.8 * sum(diff[:10]) / 10
    assert (tmp_path / "samples" / "step_0000040.png").is_file()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 80
    pipe = HARTPipeline.from_pretrained(final)
    assert pipe.head.config.residual_scale == pytest.approx(trainer.pipe.head.config.residual_scale)
    assert len(pipe(["a red circle"], progress=False).images) == 1


def test_checkpoint_of_another_preset_is_a_clear_error(tmp_path):
    HARTTrainer(tiny_run(tmp_path)).run(until=2)
    state = load_training_state(tmp_path / "checkpoint.safetensors")
    state["preset"] = "cpu-64"
    save_training_state(tmp_path / "checkpoint.safetensors", state)
    with pytest.raises(RuntimeError, match="preset"):
        HARTTrainer(tiny_run(tmp_path), resume=True)


@pytest.mark.parametrize("overrides, message", [
    (dict(preset="nope"), "unknown preset"), (dict(steps=0), "at least 1"), (dict(cfg_drop=1.0), "cfg_drop"),
])
def test_invalid_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_run(tmp_path, **overrides)


@pytest.mark.slow
def test_few_hundred_steps_on_shapes_lower_the_cross_entropy_measurably(tmp_path):
    """The CPU recipe's model (cpu-64: MiniLM text, 7.2M-parameter transformer) on real shapes data."""
    cfg = HARTTrainConfig(out_dir=str(tmp_path), preset="cpu-64", data="shapes", steps=300, batch_size=8,
                          lr=1e-3, warmup_steps=20, log_every=10, sample_every=0, ckpt_every=0)
    trainer = HARTTrainer(cfg)
    trainer.run()
    ce = [row["ce"] for row in trainer.history]
    first, last = sum(ce[:3]) / 3, sum(ce[-3:]) / 3
    assert last < 0.8 * first, (first, last)


def test_init_from_continues_from_a_saved_pipeline_and_checks_its_tokenizer(tmp_path):
    first = train_hart(tiny_run(tmp_path / "a", steps=2, sample_every=0))
    trainer = HARTTrainer(tiny_run(tmp_path / "b", init_from=str(first), sample_every=0))
    saved = HARTPipeline.from_pretrained(first)
    assert torch.equal(trainer.model.transformer.word_embed.weight, saved.transformer.word_embed.weight)
    assert trainer.pipe.head.config.residual_scale == saved.head.config.residual_scale
    trainer.run(until=1)
    train_hart(tiny_run(tmp_path / "a", steps=2, sample_every=0, lr=1e-3), overwrite=True)  # the first stage is redone
    with pytest.raises(RuntimeError, match="retrained since"):
        HARTTrainer(tiny_run(tmp_path / "b", init_from=str(first), sample_every=0), resume=True)
