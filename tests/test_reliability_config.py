"""Reliability of configuration files: a value of the wrong type is an error naming file and key."""

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hart.cli import main
from tokenizer.checkpoint import CheckpointError, load_config
from tokenizer.config import TokenizerConfig, get_preset
from tokenizer.config_types import checked_fields

TINY = dataclasses.asdict(get_preset("tiny"))
INT_KEYS = [k for k, v in TINY.items() if type(v) is int]
BOOL_KEYS = [k for k, v in TINY.items() if type(v) is bool]


def write_config(folder, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**TINY, **changes}))
    return folder


def test_the_unchanged_config_loads(tmp_path):
    assert load_config(write_config(tmp_path), TokenizerConfig) == get_preset("tiny")


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(INT_KEYS), value=st.one_of(st.floats(), st.text(max_size=3), st.booleans()))
def test_an_int_field_refuses_floats_strings_and_bools(tmp_path_factory, key, value):
    folder = write_config(tmp_path_factory.mktemp("c"), **{key: value}) if not (
        isinstance(value, float) and not math.isfinite(value)) else None
    if folder is None:  # JSON cannot hold NaN/inf portably; check the value directly
        with pytest.raises((TypeError, ValueError), match=key):
            checked_fields(TokenizerConfig, {key: value})
        return
    with pytest.raises(CheckpointError, match=rf"config.json.*{key}"):
        load_config(folder, TokenizerConfig)


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_a_bool_field_takes_only_true_or_false(tmp_path, value):
    assert BOOL_KEYS, "the tiny tokenizer config has a bool field (patch_skip)"
    with pytest.raises(CheckpointError, match=BOOL_KEYS[0]):
        load_config(write_config(tmp_path, **{BOOL_KEYS[0]: value}), TokenizerConfig)


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.just(float("nan")), st.just(float("inf")), st.text(max_size=3)))
def test_float_fields_must_be_finite_numbers(value):
    from hart.config import DiffusionHeadConfig

    with pytest.raises((TypeError, ValueError), match="residual_scale"):
        checked_fields(DiffusionHeadConfig, {"residual_scale": value})


@given(st.lists(st.integers(1, 64), min_size=1, max_size=6))
def test_tuples_come_from_lists_of_the_right_item_type(items):
    assert checked_fields(TokenizerConfig, {"patch_nums": items})["patch_nums"] == tuple(items)
    with pytest.raises(TypeError, match=r"patch_nums\[0\]"):
        checked_fields(TokenizerConfig, {"patch_nums": [float(items[0]) + 0.5, *items[1:]]})


def test_training_recipes_with_bad_yaml_or_wrong_types_fail_in_one_line(tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("out_dir: x\nsteps: [1,\n")
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text(f"out_dir: {tmp_path / 'run'}\nmodel: tiny\nsteps: 10.5\n")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n")
    for recipe, message in ((bad_yaml, "not valid YAML"), (wrong_type, "steps must be an integer"),
                            (not_a_mapping, "key: value")):
        assert main(["train-tokenizer", "--config", str(recipe)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and str(recipe) in err[0]
