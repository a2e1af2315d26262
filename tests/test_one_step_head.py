"""Contracts of the one-step residual head beside the 8-step one (hart.one_step, HARTPipeline, hart info)."""

import copy
import json

import numpy as np
import pytest
import torch

from hart.cli import main
from hart.diffusion import GaussianDiffusion
from hart.dmd import generator_timestep, one_step
from hart.one_step import ONE_STEP_DIR, SPEC_NAME, OneStepSpec
from hart.pipeline import HARTPipeline
from hart.sampler import one_step_residual
from hart.seeding import prompt_generators
from tokenizer.checkpoint import CheckpointError

PROMPTS = ["a red circle", "a blue square", "a green triangle"]


@pytest.fixture(scope="module")
def teacher() -> HARTPipeline:
    """The tiny pipeline with a head that is not the zero map (adaLN-Zero starts the output at 0)."""
    pipe = HARTPipeline.from_preset("tiny", seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        torch.nn.init.normal_(pipe.head.final_linear.weight, std=0.1)
    return pipe


def spec_for(head) -> OneStepSpec:
    return OneStepSpec(generator_t=generator_timestep(head.config.train_steps))


def with_one_step(pipe: HARTPipeline, head_1step=None, spec=None) -> HARTPipeline:
    """``pipe``'s components (shared) with a one-step head: by default a copy of the 8-step head."""
    head_1step = copy.deepcopy(pipe.head) if head_1step is None else head_1step
    return HARTPipeline(pipe.text_encoder, pipe.transformer, pipe.head, pipe.tokenizer, pipe.text_spec,
                        pipe.settings, head_1step, spec or spec_for(head_1step))


def arrays(pipe: HARTPipeline, prompts=PROMPTS, **kwargs) -> list[np.ndarray]:
    return [np.asarray(img) for img in pipe(prompts, seed=0, progress=False, **kwargs).images]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_save_then_load_keeps_the_one_step_head_and_its_spec(teacher, tmp_path):
    pipe = with_one_step(teacher, spec=OneStepSpec(generator_t=97, clip_x0=4.0, teacher_steps=8, guidance_scale=2.5))
    pipe.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model" / ONE_STEP_DIR).iterdir()) == [
        "config.json", "model.safetensors", SPEC_NAME]
    loaded = HARTPipeline.from_pretrained(tmp_path / "model")
    assert loaded.one_step == pipe.one_step
    assert loaded.head_1step.config == pipe.head_1step.config and not loaded.head_1step.training
    want, got = pipe.head_1step.state_dict(), loaded.head_1step.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert same(arrays(pipe, diffusion_steps=1), arrays(loaded, diffusion_steps=1))


def test_one_step_images_come_from_the_one_step_head(teacher):
    pipe = with_one_step(teacher)
    distilled = arrays(pipe, diffusion_steps=1)
    teacher_at_1 = arrays(teacher, diffusion_steps=1)  # the ablation: the 8-step head run at one step
    assert not same(distilled, teacher_at_1)
    with torch.no_grad():
        pipe.head_1step.final_linear.weight.add_(0.05 * torch.randn_like(pipe.head_1step.final_linear.weight))
    assert not same(arrays(pipe, diffusion_steps=1), distilled)
    pipe.head_1step = pipe.one_step = None
    assert same(arrays(pipe, diffusion_steps=1), teacher_at_1)


@pytest.mark.parametrize("steps", [8, 2])
def test_other_step_counts_ignore_the_one_step_head(teacher, steps):
    head_1step = copy.deepcopy(teacher.head)
    with torch.no_grad():  # a one-step head far from the teacher: any use of it would show
        head_1step.final_linear.weight.mul_(-3.0)
    assert same(arrays(with_one_step(teacher, head_1step), diffusion_steps=steps),
                arrays(teacher, diffusion_steps=steps))


def test_one_step_residual_reads_prompt_rows_with_each_rows_noise(teacher):
    ar, head = teacher.transformer, copy.deepcopy(teacher.head)
    spec = OneStepSpec(generator_t=90, clip_x0=2.0)
    B, l, D, C = 2, 9, ar.config.width, ar.config.latent_channels
    torch.manual_seed(3)
    h, codes = torch.randn(2 * B, l, D), torch.randn(2 * B, l, C)

    def run(h_rows: torch.Tensor) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(s) for s in (5, 6)]
        return one_step_residual(ar, head, spec, h_rows, codes, True, generators)

    got = run(h)
    noise = torch.cat([torch.randn(l, C, generator=torch.Generator().manual_seed(s)) for s in (5, 6)])
    z = ar.diffusion_condition(h[:B], codes[:B]).flatten(0, 1)
    x0 = one_step(head, GaussianDiffusion(head.config.train_steps), noise, z, t_gen=90, clip_x0=2.0)
    torch.testing.assert_close(got, x0.view(B, l, C) / head.config.residual_scale, rtol=0, atol=0)
    assert got.abs().max() <= 2.0 / head.config.residual_scale
    garbage_null = torch.cat([h[:B], 100 * torch.randn(B, l, D)])  # guidance is baked in: null rows unread
    assert torch.equal(run(garbage_null), got)


def test_one_step_image_of_a_prompt_does_not_depend_on_its_batch(teacher):
    pipe = with_one_step(teacher)
    batched = arrays(pipe, diffusion_steps=1, batch_size=3)
    last = pipe(PROMPTS[2:], generator=prompt_generators(0, 3)[2:], progress=False, diffusion_steps=1).images
    assert np.array_equal(np.asarray(last[0]), batched[2])


def test_mismatched_one_step_head_is_a_clear_error(teacher):
    from hart.config import DiffusionHeadConfig
    from hart.diffusion_head import DiffusionHead

    wide = DiffusionHead(DiffusionHeadConfig(**{**vars(teacher.head.config), "latent_channels": 8}))
    with pytest.raises(ValueError, match="one-step head of latent width 8 .* does not match"):
        with_one_step(teacher, wide)
    scaled = DiffusionHead(DiffusionHeadConfig(**{**vars(teacher.head.config), "residual_scale": 3.0}))
    with pytest.raises(ValueError, match="residual_scale"):
        with_one_step(teacher, scaled)
    with pytest.raises(ValueError, match="generator_t must lie in"):
        with_one_step(teacher, spec=OneStepSpec(generator_t=teacher.head.config.train_steps))
    with pytest.raises(ValueError, match="together"):
        HARTPipeline(teacher.text_encoder, teacher.transformer, teacher.head, teacher.tokenizer,
                     teacher.text_spec, teacher.settings, head_1step=copy.deepcopy(teacher.head))


@pytest.mark.parametrize("edit, message", [
    (lambda raw: {**raw, "guidance": 2.0}, r"one_step.json has keys \['guidance'\]"),
    (lambda raw: {**raw, "generator_t": 98.0}, r"one_step.json is not a valid OneStepSpec: generator_t must be an int"),
    (lambda raw: {**raw, "generator_t": 100}, r"one_step.json: generator_t 100 must lie in \[0, 99\]"),
])
def test_bad_one_step_json_is_a_checkpoint_error_naming_the_key(teacher, tmp_path, edit, message):
    with_one_step(teacher).save_pretrained(tmp_path)
    path = tmp_path / ONE_STEP_DIR / SPEC_NAME
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(CheckpointError, match=message):
        HARTPipeline.from_pretrained(tmp_path)


@pytest.mark.parametrize("name, message", [(SPEC_NAME, "one_step.json not found"),
                                           ("model.safetensors", "weights file is missing")])
def test_incomplete_one_step_folder_is_a_checkpoint_error(teacher, tmp_path, name, message):
    with_one_step(teacher).save_pretrained(tmp_path)
    (tmp_path / ONE_STEP_DIR / name).unlink()
    with pytest.raises(CheckpointError, match=message):
        HARTPipeline.from_pretrained(tmp_path)


def test_saving_without_a_one_step_head_removes_an_earlier_one(teacher, tmp_path):
    with_one_step(teacher).save_pretrained(tmp_path)
    teacher.save_pretrained(tmp_path)
    assert not (tmp_path / ONE_STEP_DIR).exists()
    assert HARTPipeline.from_pretrained(tmp_path).head_1step is None


def test_cli_info_lists_the_one_step_head(teacher, tmp_path, capsys):
    pipe = with_one_step(teacher)
    pipe.save_pretrained(tmp_path)
    assert main(["info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["one_step_head"]
    n = sum(p.numel() for p in pipe.head_1step.parameters())
    assert info == {"params": n, "generator_t": 98, "clip_x0": None, "teacher_steps": 8, "guidance_scale": 1.0}
    assert main(["info", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "one-step head" in x)
    assert "generator_t 98" in line and f"{n / 1e6:.2f} M parameters" in line
    teacher.save_pretrained(tmp_path / "plain")
    assert main(["info", str(tmp_path / "plain"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["one_step_head"] is None


def test_to_moves_the_one_step_head():
    pipe = with_one_step(HARTPipeline.from_preset("tiny", seed=0)).to("cpu", torch.bfloat16)
    assert next(pipe.head_1step.parameters()).dtype == torch.bfloat16
    assert len(arrays(pipe, PROMPTS[:1], diffusion_steps=1)) == 1
