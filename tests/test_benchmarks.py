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


def test_flop_counts_add_up_by_stage_and_follow_the_design():
    pytest.importorskip("diffusers")
    from benchmarks.baselines import PIXART, build_denoiser
    from benchmarks.flops import baseline_flops, hart_flops

    tiny = hart_flops("tiny", text_tokens=8)
    assert tiny["all"] == sum(tiny[k] for k in ("linear", "attention", "head", "decode")) > 0
    assert all(tiny[k] > 0 for k in ("linear", "attention", "head", "decode"))
    kept = hart_flops("tiny", text_tokens=8, keep_null_prefix=True)["all"]
    assert kept < tiny["all"]  # the null prompt's prefill is left out
    assert hart_flops("tiny", batch=2, text_tokens=8, keep_null_prefix=True)["all"] == 2 * kept
    # per call the null prompt is prefilled once, whatever the batch
    assert hart_flops("tiny", batch=2, text_tokens=8)["all"] - 2 * kept == tiny["all"] - kept
    pix = baseline_flops(PIXART, 256)
    assert pix["head"] == 0 and pix["all"] == pix["linear"] + pix["attention"] + pix["decode"]
    import torch

    with torch.device("meta"):
        params = sum(p.numel() for p in build_denoiser(PIXART, 256).parameters())
    assert 0.6e9 < params < 0.62e9  # the PixArt-Sigma size
    # 20 guided steps of a 0.61B DiT over 256 image tokens + 300 text tokens (cross-attention K/V) dominate
    assert 2 * 20 * 2 * params * 256 < pix["linear"] < 2 * 20 * 2 * params * (256 + 300)


def test_hart_flops_follow_the_prompt_length_and_only_in_the_transformer():
    pytest.importorskip("diffusers")
    from benchmarks.flops import hart_flops

    short, long = hart_flops("tiny", text_tokens=4), hart_flops("tiny", text_tokens=16)
    assert short["linear"] < long["linear"] and short["attention"] < long["attention"]
    assert short["head"] == long["head"] and short["decode"] == long["decode"]


def test_speed_measurement_runs_in_its_own_process_and_reports_memory():
    pytest.importorskip("diffusers")
    from benchmarks.speed import matmul_peak, matmul_sweep, measure

    out = measure("hart", preset="tiny", resolution=16, batch=2, device="cpu", dtype="fp32", repeats=1,
                  text_tokens=4)
    assert out["seconds"] > 0 and out["peak_memory_bytes"] > 50 * 2**20 and out["extrapolated_from_steps"] is None
    sweep = matmul_sweep("cpu", "fp32", repeats=1, shapes=((64, 64, 64), (128, 64, 32)))
    assert set(sweep) == {"64x64x64", "128x64x32"} and min(sweep.values()) > 1e6
    assert matmul_peak("cpu", "fp32", repeats=1, shapes=((64, 64, 64),)) > 1e6


def test_speed_plot_reads_bench_json_lines_and_names_a_missing_file(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from benchmarks.plot_speed import load, plot

    f = {"all": 2e12, "linear": 1e12}
    line = {"flops": {"256": {"hart-0.7b": f, "pixart-sigma-0.6b": f}, "512": {"hart-0.7b": f}},
            "device": "cpu", "dtype": "fp32",
            "speed": {"rows": {"256": {"hart-0.7b": {"1": {"seconds": 2.0}},
                                       "pixart-sigma-0.6b": {"1": {"seconds": 5.0}}}}}}
    (tmp_path / "a.json").write_text(json.dumps(line) + "\n")
    out = plot(load([tmp_path / "a.json"]), tmp_path / "p.png")
    assert Image.open(out).size[0] > 500
    with pytest.raises(FileNotFoundError, match="--json-out"):
        load([tmp_path / "missing.json"])


def test_speed_plot_labels_hart_rows_of_other_prompt_lengths():
    pytest.importorskip("matplotlib")
    from benchmarks.plot_speed import models_in

    styles = models_in(["hart-0.7b", "hart-0.7b-t77", "sd3-medium-2b"])
    assert styles["hart-0.7b-t77"][0] == "HART-0.7B, 77-token prompt"
    assert styles["hart-0.7b-t77"][1] != styles["hart-0.7b"][1]
    assert {"hart-0.7b", "pixart-sigma-0.6b", "sd3-medium-2b"} <= styles.keys()
