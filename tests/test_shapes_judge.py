"""Contracts of the pixel-analysis shapes judge: exact on rendered shapes, honest on the rest."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from tokenizer.data.shapes import COLORS, ShapesDataset, ShapeSpec, render
from tokenizer.data.shapes_judge import accuracy, judge


@pytest.mark.parametrize("size", [64, 128])
def test_judge_reads_every_attribute_of_rendered_shapes(size):
    data = ShapesDataset(size, seed=7)
    for i in range(150):
        spec = data.spec(i)
        seen = judge(render(spec, size, np.random.default_rng([7, i, 1])))
        assert seen.spec == spec, (i, spec, seen)


def test_judge_covers_the_whole_grammar_without_jitter():
    for color in COLORS:
        for shape in ("circle", "square", "triangle"):
            for size, position, background in (("small", "top left", "white"), ("large", "bottom right", "black")):
                spec = ShapeSpec(size, color, shape, position, background)
                assert judge(render(spec, 64)).spec == spec


def test_matches_names_each_wrong_attribute():
    spec = ShapeSpec("large", "red", "circle", "center", "white")
    seen = judge(render(spec, 64))
    other = dataclasses.replace(spec, color="blue", position="left")
    assert seen.matches(spec) == dict.fromkeys(("size", "color", "shape", "position", "background"), True)
    assert seen.matches(other) == {"size": True, "color": False, "shape": True, "position": False,
                                   "background": True}


def test_blank_picture_has_no_object_and_matches_nothing():
    seen = judge(Image.new("RGB", (64, 64), (0, 0, 0)))
    assert seen.spec is None
    assert not any(seen.matches(ShapeSpec("small", "red", "circle", "center", "black")).values())


def test_judge_accepts_arrays_and_rejects_non_square_images():
    spec = ShapeSpec("small", "green", "triangle", "top", "black")
    assert judge(np.asarray(render(spec, 64))).spec == spec
    with pytest.raises(ValueError, match="square RGB"):
        judge(np.zeros((64, 32, 3), dtype=np.uint8))


def test_accuracy_counts_attributes_and_all_correct():
    specs = [ShapeSpec("large", "red", "circle", "center", "white"),
             ShapeSpec("small", "blue", "square", "top", "black")]
    images = [render(specs[0], 64), render(dataclasses.replace(specs[1], color="green"), 64)]
    scores = accuracy(images, specs)
    assert scores == {"size": 1.0, "color": 0.5, "shape": 1.0, "position": 1.0, "background": 1.0, "all": 0.5}
    with pytest.raises(ValueError, match="as many images"):
        accuracy(images, specs[:1])


def test_blurred_small_triangles_are_still_triangles():
    """Blur rounds corners (fill ratio near a circle's) but keeps the centre of mass low."""
    from PIL import ImageFilter

    for shape in ("triangle", "circle", "square"):
        spec = ShapeSpec("small", "blue", shape, "center", "white")
        blurred = render(spec, 64).filter(ImageFilter.GaussianBlur(1.0))
        assert judge(blurred).spec == spec
