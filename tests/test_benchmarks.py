"""Smoke runs of the benchmark scripts on tiny random models: they run end to end and print JSON."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from hart.pipeline import HARTPipeline

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, argv: list[str], monkeypatch, capsys) -> dict:
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return HARTPipeline.from_preset("tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("m") / "tiny")


def test_shapes_accuracy_scores_a_random_model_near_zero_and_real_shapes_at_one(tiny_model, tmp_path,
                                                                                 monkeypatch, capsys):
    result = run_script("shapes_accuracy.py", ["--model", str(tiny_model), "--n", "6", "--batch-size", "3",
                                               "--grid", str(tmp_path / "grid.png")], monkeypatch, capsys)
    assert result["prompts"] == 6 and (tmp_path / "grid.png").is_file()
    assert result["scores"]["real"]["all"] == 1.0  # the judge reads the rendered prompts exactly
    assert result["all_correct"] <= 0.5  # random weights do not follow prompts
