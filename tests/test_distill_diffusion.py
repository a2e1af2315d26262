"""Contracts of ``hart distill-diffusion`` (tiny): DMD of a baseline runs end to end, resumes exactly,
and the student draws in one network call without guidance."""

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from hart.dit.distill import DiffusionDistiller, DistillDiffusionConfig, distill_diffusion  # noqa: E402
from hart.dit.pipeline import DiTPipeline, DiTSettings  # noqa: E402


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return DiTPipeline.from_preset("tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("t") / "teacher")


def run_cfg(teacher, out, **overrides) -> DistillDiffusionConfig:
    settings = dict(model=str(teacher), out_dir=str(out), steps=4, batch_size=3, pool_prompts=8, fake_steps=2,
                    generator_lr=1e-3, fake_lr=1e-3, log_every=1, ckpt_every=2)
    settings.update(overrides)
    return DistillDiffusionConfig(**settings)


def test_student_draws_in_one_denoiser_call(teacher, tmp_path):
    final = distill_diffusion(run_cfg(teacher, tmp_path))
    student = DiTPipeline.from_pretrained(final)
    assert student.settings.scheduler == "one-step" and student.settings.cfg_scale == 0
    calls = []
    student.denoiser.register_forward_hook(lambda *a: calls.append(1))
    a = student(["a red circle", "a blue square"], seed=0, progress=False).images
    assert len(calls) == 1 and a[0].size == (16, 16)
    b = student(["a red circle", "a blue square"], seed=0, progress=False).images
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    before = DiTPipeline.from_pretrained(teacher).denoiser.state_dict()
    after = student.denoiser.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the generator was trained


def test_resumed_distillation_equals_uninterrupted(teacher, tmp_path):
    full = distill_diffusion(run_cfg(teacher, tmp_path / "full"))
    cfg = run_cfg(teacher, tmp_path / "split")
    assert DiffusionDistiller(cfg).run(until=2) is None
    split = DiffusionDistiller(cfg, resume=True).run()
    sa = DiTPipeline.from_pretrained(full).denoiser.state_dict()
    sb = DiTPipeline.from_pretrained(split).denoiser.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_step_settings_refuse_steps_and_guidance():
    with pytest.raises(ValueError, match="one-step"):
        DiTSettings(scheduler="one-step", num_inference_steps=4, cfg_scale=0.0)
    with pytest.raises(ValueError, match="one-step"):
        DiTSettings(scheduler="one-step", num_inference_steps=1, cfg_scale=3.0)


def test_a_student_is_not_distilled_again(teacher, tmp_path):
    final = distill_diffusion(run_cfg(teacher, tmp_path / "a", steps=1))
    with pytest.raises(ValueError, match="already a one-step student"):
        DiffusionDistiller(run_cfg(final, tmp_path / "b"))


def test_cli_distils_and_reports_a_missing_teacher(teacher, tmp_path, capsys):
    from hart.cli import main

    assert main(["distill-diffusion", "--model", str(teacher), "--out-dir", str(tmp_path / "r"), "--steps", "1",
                 "--batch-size", "2", "--pool-prompts", "4", "--fake-steps", "1"]) == 0
    assert (tmp_path / "r" / "final" / "denoiser" / "model.safetensors").is_file()
    assert main(["distill-diffusion", "--model", str(tmp_path / "none"), "--out-dir", str(tmp_path / "s")]) == 2
    assert "none" in capsys.readouterr().err
