"""Reliability of generation: bad settings are refused where they enter, non-finite values never
become images, and CLI mistakes are one line before any work is done."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hart.cli import main
from hart.config import DiffusionHeadConfig
from hart.pipeline import HARTPipeline
from hart.sampler import SamplingSettings
from tokenizer.checkpoint import CheckpointError
from tokenizer.finite import NonFiniteError

FLOAT_FIELDS = ["cfg_scale", "top_p", "temperature", "clip_residual"]
INT_FIELDS = ["top_k", "diffusion_steps"]


@pytest.fixture(scope="module")
def tiny_pipe() -> HARTPipeline:
    return HARTPipeline.from_preset("tiny", seed=0)


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(FLOAT_FIELDS), value=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_float_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingSettings(**{field: value})


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(INT_FIELDS),
       value=st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=2)))
def test_integer_settings_take_integers_only(field, value):
    with pytest.raises((TypeError, ValueError), match=field):
        SamplingSettings(**{field: value})


@settings(max_examples=60, deadline=None)
@given(cfg=st.floats(0, 20), top_p=st.floats(0.01, 1), temperature=st.floats(0.05, 5), top_k=st.integers(0, 5000),
       steps=st.integers(1, 50), clip=st.floats(0.01, 100))
def test_valid_settings_are_accepted_unchanged(cfg, top_p, temperature, top_k, steps, clip):
    s = SamplingSettings(cfg, top_k, top_p, temperature, steps, clip)
    assert (s.cfg_scale, s.top_k, s.top_p, s.temperature, s.diffusion_steps, s.clip_residual) == \
        (cfg, top_k, top_p, temperature, steps, clip)


def test_nan_guidance_is_an_error_not_guidance_off(tiny_pipe):
    with pytest.raises(ValueError, match="cfg_scale"):
        tiny_pipe(["a red circle"], cfg_scale=float("nan"), progress=False)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_a_head_with_a_useless_residual_scale_is_refused(scale):
    with pytest.raises(ValueError, match="residual_scale"):
        DiffusionHeadConfig(residual_scale=scale)


@pytest.mark.parametrize("part, component", [("head", "diffusion head"), ("transformer", "transformer"),
                                             ("tokenizer", "tokenizer decoder")])
def test_nan_weights_raise_an_error_naming_the_component(part, component):
    pipe = HARTPipeline.from_preset("tiny", seed=0)
    target = {"head": pipe.head, "transformer": pipe.transformer, "tokenizer": pipe.tokenizer.decoder}[part]
    weight = [p for p in target.parameters() if p.ndim >= 2][-1]
    with torch.no_grad():
        weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=component):
        pipe(["a red circle"], progress=False)


def test_a_model_directory_without_pipeline_json_is_an_error(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path)
    (tmp_path / "pipeline.json").unlink()
    with pytest.raises(CheckpointError, match="pipeline.json"):
        HARTPipeline.from_pretrained(tmp_path)


def test_float_and_string_values_in_pipeline_json_are_errors_naming_the_key(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "pipeline.json").read_text())
    (tmp_path / "pipeline.json").write_text(json.dumps({**raw, "top_k": 50.5}))
    with pytest.raises(CheckpointError, match="top_k"):
        HARTPipeline.from_pretrained(tmp_path)


def test_a_lone_surrogate_prompt_is_a_clear_error(tiny_pipe):
    with pytest.raises(ValueError, match="prompt 1 is not valid text"):
        tiny_pipe(["a red circle", "bad \ud800 text"], progress=False)


def test_generate_checks_the_output_path_before_loading_the_model(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out, message in ((blocker / "x.png", "cannot create the output folder"), (tmp_path, "is a directory"),
                         (tmp_path / "x.jpg", ".png")):
        assert main(["generate", "a red circle", "--model", "no-such-model", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_reconstruct_of_a_non_image_or_truncated_file_is_one_line(tmp_path, capsys):
    from PIL import Image

    text = tmp_path / "notes.png"
    text.write_text("hello")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "full.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:60])
    for bad in (text, truncated):
        assert main(["reconstruct", str(bad), "--out", str(tmp_path / "r.png")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error" in err[0], err
