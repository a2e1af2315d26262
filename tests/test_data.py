"""Contracts of the training data: procedural shapes and image folders."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tokenizer.data import ImageFolder, ShapesDataset
from tokenizer.data.images import read_captions, to_pil, to_tensor
from tokenizer.data.shapes import BACKGROUNDS, COLORS, POSITIONS, SIZES, ShapeSpec, render
from tokenizer.data.sources import Interleave, StepBatches, image_stream


def test_shapes_are_deterministic_per_index_and_seed():
    a, b = ShapesDataset(32, seed=0), ShapesDataset(32, seed=0)
    assert torch.equal(a[5][0], b[5][0]) and a[5][1] == b[5][1]
    assert not torch.equal(a[5][0], a[6][0])
    assert not all(torch.equal(a[i][0], ShapesDataset(32, seed=1)[i][0]) for i in range(4))


def test_shapes_caption_follows_the_grammar():
    img, caption = ShapesDataset(64)[0]
    spec = ShapesDataset(64).spec(0)
    words = (spec.size, spec.color, spec.shape, spec.position, spec.background)
    assert caption == "a {} {} {} at the {} on a {} background".format(*words)
    assert img.shape == (3, 64, 64) and img.min() >= -1 and img.max() <= 1


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_rendered_object_has_its_colour_at_its_position_and_background_elsewhere(shape):
    spec = ShapeSpec("large", "blue", shape, "top left", "black")
    arr = np.asarray(render(spec, 64)).astype(int)
    cx, cy = (int(p * 64) for p in POSITIONS["top left"])
    # Sample the object a little below its centre: inside all three shapes (the triangle's apex is up).
    assert np.abs(arr[cy + 3, cx] - COLORS["blue"]).max() <= 1
    assert np.abs(arr[60, 60] - BACKGROUNDS["black"]).max() == 0
    side = SIZES["large"] * 64
    covered = (np.abs(arr - COLORS["blue"]).max(axis=2) < 40).sum()
    expected = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}[shape] * side * side
    assert abs(covered - expected) / expected < 0.15


def test_jitter_changes_pixels_but_not_the_attributes():
    spec = ShapeSpec("small", "red", "square", "center", "white")
    plain = np.asarray(render(spec, 64)).astype(int)
    jittered = np.asarray(render(spec, 64, np.random.default_rng(0))).astype(int)
    assert not np.array_equal(plain, jittered)
    assert np.abs(jittered[32, 32] - COLORS["red"]).max() <= 12


def make_folder(tmp_path, n=3, size=(200, 150)):
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"img{i}.png")
    return tmp_path


def test_image_folder_gives_deterministic_crops_in_range(tmp_path):
    ds = ImageFolder(make_folder(tmp_path), 64, seed=0)
    x = ds[7]
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, ImageFolder(tmp_path, 64, seed=0)[7])
    assert not torch.equal(x, ds[8])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing", 64)
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path, 64)
    make_folder(tmp_path, n=1, size=(40, 40))
    with pytest.raises(ValueError, match="smaller than 64"):
        ImageFolder(tmp_path, 64)[0]


def test_captions_jsonl(tmp_path):
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "a.png", "text": "a cat"}) + "\n\n")
    assert read_captions(tmp_path) == {"a.png": "a cat"}
    (tmp_path / "captions.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(ValueError, match="captions.jsonl:1"):
        read_captions(tmp_path)


def test_tensor_pil_round_trip_is_lossless():
    arr = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(to_pil(to_tensor(Image.fromarray(arr)))), arr)


def test_interleave_and_step_batches_are_resumable():
    mix = Interleave([["a0", "a1"], ["b0", "b1"]])
    assert [mix[i] for i in range(4)] == ["a0", "b0", "a1", "b1"]
    full = iter(StepBatches(4, 0, rank=1, world=2))
    batches = [next(full) for _ in range(3)]
    assert batches[0] == [4, 5, 6, 7] and batches[1] == [12, 13, 14, 15]
    assert next(iter(StepBatches(4, 2, rank=1, world=2))) == batches[2]


def test_image_stream_rejects_no_data():
    with pytest.raises(ValueError, match="no training data"):
        image_stream([], 64)


def test_captioned_folder_gives_centre_crops_and_captions(tmp_path):
    from hart.data import CaptionedFolder, captioned_stream

    make_folder(tmp_path, n=2)
    (tmp_path / "captions.jsonl").write_text(
        "\n".join(json.dumps({"file": f"img{i}.png", "text": f"picture {i}"}) for i in range(2)))
    ds = captioned_stream(str(tmp_path), 64)
    assert isinstance(ds, CaptionedFolder) and len(ds) == 2
    img, text = ds[3]
    assert img.shape == (3, 64, 64) and text == "picture 1"
    assert torch.equal(img, ds[1][0])


def test_captioned_folder_errors(tmp_path):
    from hart.data import CaptionedFolder

    make_folder(tmp_path, n=1)
    with pytest.raises(FileNotFoundError, match="captions.jsonl"):
        CaptionedFolder(tmp_path, 64)
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "gone.png", "text": "x"}))
    with pytest.raises(FileNotFoundError, match="missing"):
        CaptionedFolder(tmp_path, 64)
