#!/usr/bin/env python
"""Reconstruction PSNR of a photo tokenizer on real photos it never saw: discrete-only vs hybrid.

Photos: scikit-image's colour photographs (astronaut, chelsea, coffee, rocket, motorcycle_left),
none of which is in the photo-f8 training set (scikit-learn's two samples + mate-backgrounds'
nature photos). Each photo is resized so that its short side is 256 or 512 px (Lanczos) and cut
into every non-overlapping 128 x 128 tile; PSNR is averaged over tiles (peak-to-peak of [-1, 1]).

    python benchmarks/tokenizer_psnr.py [--model photo-f8]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from PIL import Image

from tokenizer import HybridTokenizer
from tokenizer.data.images import to_tensor
from tokenizer.reconstruct import reconstruct

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
SHORT_SIDES = (256, 512)


def tiles(name: str, short: int, size: int) -> torch.Tensor:
    """All non-overlapping size x size tiles of photo ``name`` resized to short side ``short``."""
    from skimage import data

    pixels = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    img = Image.fromarray(pixels).convert("RGB")
    W, H = img.size
    scale = short / min(W, H)
    img = img.resize((round(W * scale), round(H * scale)), Image.Resampling.LANCZOS)
    x = to_tensor(img)
    rows, cols = x.shape[1] // size, x.shape[2] // size
    return torch.stack([x[:, r * size:(r + 1) * size, c * size:(c + 1) * size]
                        for r in range(rows) for c in range(cols)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="photo-f8", help="shipped tokenizer name or directory")
    args = parser.parse_args()
    tok = HybridTokenizer.from_pretrained(args.model)
    size = tok.config.image_size
    t0 = time.perf_counter()
    rows, all_d, all_h = [], [], []
    print(f"{'photo':<16} {'short side':>10} {'tiles':>6} {'discrete dB':>12} {'hybrid dB':>10} {'gain dB':>8}")
    for short in SHORT_SIDES:
        for name in PHOTOS:
            rec = reconstruct(tok, tiles(name, short, size))
            d, h = rec.psnr_discrete, rec.psnr_hybrid
            all_d.append(d)
            all_h.append(h)
            rows.append({"photo": name, "short_side": short, "tiles": len(d),
                         "discrete_db": round(d.mean().item(), 2), "hybrid_db": round(h.mean().item(), 2)})
            print(f"{name:<16} {short:>10} {len(d):>6} {d.mean():12.2f} {h.mean():10.2f} {h.mean() - d.mean():8.2f}")
    d, h = torch.cat(all_d), torch.cat(all_h)
    print(f"{'all tiles':<16} {'':>10} {len(d):>6} {d.mean():12.2f} {h.mean():10.2f} {h.mean() - d.mean():8.2f}")
    result = {
        "benchmark": "tokenizer_psnr", "model": str(args.model), "tiles": len(d),
        "discrete_db": round(d.mean().item(), 2), "hybrid_db": round(h.mean().item(), 2),
        "gain_db": round((h.mean() - d.mean()).item(), 2), "per_photo": rows,
        "seconds": round(time.perf_counter() - t0, 1), "device": "cpu",
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
