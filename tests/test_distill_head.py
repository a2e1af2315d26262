"""Contracts of `hart distill-head`: conditions from the transformer's own sampling, a one-step head
that saves and loads with its pipeline, exact resume, clear errors."""

import pytest
import torch

from hart.distill_head import DistillHeadConfig, HeadDistiller, distill_head, record_conditions
from hart.pipeline import HARTPipeline


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return HARTPipeline.from_preset("tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("teacher"))


def run_cfg(teacher, out, **overrides) -> DistillHeadConfig:
    settings = dict(model=str(teacher), out_dir=str(out), steps=4, batch_size=64, pool_images=6, fake_steps=2,
                    log_every=1, ckpt_every=2)
    settings.update(overrides)
    return DistillHeadConfig(**settings)


def test_recorded_conditions_are_the_heads_inputs_at_inference(teacher_dir):
    pipe = HARTPipeline.from_pretrained(teacher_dir)
    z, z_null = record_conditions(pipe, ["a red circle", "a blue square", "a big green triangle"], seed=0, batch=2)
    l = pipe.transformer.config.patch_nums[-1] ** 2
    assert z.shape == z_null.shape == (3 * l, pipe.transformer.config.width)
    assert not torch.equal(z, z_null)  # prompt and null prompt differ
    assert pipe.head.__class__.__name__ == "DiffusionHead"  # the recorder is removed again


def test_distillation_saves_a_pipeline_whose_one_step_head_is_used_at_one_step(teacher_dir, tmp_path):
    final = distill_head(run_cfg(teacher_dir, tmp_path))
    pipe = HARTPipeline.from_pretrained(final)
    assert pipe.head_1step is not None
    teacher = HARTPipeline.from_pretrained(teacher_dir)
    one = pipe(["a red circle"], seed=0, diffusion_steps=1, progress=False).images[0]
    naive = teacher(["a red circle"], seed=0, diffusion_steps=1, progress=False).images[0]
    assert one.tobytes() != naive.tobytes()  # the distilled head, not the teacher at one step
    eight = pipe(["a red circle"], seed=0, progress=False).images[0]
    assert eight.tobytes() == teacher(["a red circle"], seed=0, progress=False).images[0].tobytes()


def test_a_resumed_distillation_equals_an_uninterrupted_one(teacher_dir, tmp_path):
    full = HeadDistiller(run_cfg(teacher_dir, tmp_path / "full"))
    full.run()
    HeadDistiller(run_cfg(teacher_dir, tmp_path / "split")).run(until=2)
    split = HeadDistiller(run_cfg(teacher_dir, tmp_path / "split"), resume=True)
    assert split.step == 2
    split.run()
    a, b = full.gen.state_dict(), split.gen.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_regression_variant_runs_and_logs_its_loss(teacher_dir, tmp_path):
    d = HeadDistiller(run_cfg(teacher_dir, tmp_path, steps=1, regression_weight=1.0, regression_tokens=32))
    d.run()
    assert "regression_loss" in d.history[-1]


def test_bad_settings_and_a_teacher_without_guidance_are_clear_errors(teacher_dir, tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        run_cfg(teacher_dir, tmp_path, steps=0)
    pipe = HARTPipeline.from_pretrained(teacher_dir)
    pipe.settings = type(pipe.settings)(cfg_scale=0.0)
    with pytest.raises(ValueError, match="null condition"):
        record_conditions(pipe, ["a red circle"], seed=0)
