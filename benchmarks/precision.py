#!/usr/bin/env python
"""Which part of the sampler is sensitive to bf16: each network in bf16 alone, against fp32.

For hart-shapes-64 on the shapes benchmark prompts, rows: fp32 everywhere; bf16 everywhere
(``pipe.to(dtype=torch.bfloat16)``); and one network at a time in bf16 (text encoder, transformer,
residual head, tokenizer) with the others in fp32 (the sampler casts values where they pass from
one network to the next). Columns: all-five-attributes accuracy (pixel judge), how many images
changed their judged colour or shape against fp32, mean and max absolute pixel difference against
fp32 (0-255), and seconds for the whole set.

    python benchmarks/precision.py [--model hart-shapes-64] [--n 64]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hart import HARTPipeline  # noqa: E402
from tokenizer.data.shapes import ShapesDataset  # noqa: E402
from tokenizer.data.shapes_judge import accuracy, judge  # noqa: E402

PARTS = ("text_encoder", "transformer", "head", "tokenizer")


def with_bf16(model: str, part: str) -> HARTPipeline:
    """The model with ``part`` ("all", "none" or a network) in bf16."""
    pipe = HARTPipeline.from_pretrained(model)
    if part == "all":
        return pipe.to(pipe.device, torch.bfloat16)
    if part != "none":
        module = pipe.text_encoder.model if part == "text_encoder" else getattr(pipe, part)
        module.to(torch.bfloat16)
    return pipe


def changed(judged, reference, attribute: str) -> int:
    """Images whose judged ``attribute`` differs from the reference's (no object found counts as a value)."""
    def value(j):
        return None if j.spec is None else getattr(j.spec, attribute)
    return sum(value(a) != value(b) for a, b in zip(judged, reference, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hart-shapes-64", help="shipped model name or pipeline directory")
    parser.add_argument("--n", type=int, default=64, help="benchmark prompts (prompt seed 10000)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per sampler call")
    args = parser.parse_args()

    data = ShapesDataset(64, seed=10_000)
    specs = [data.spec(i) for i in range(args.n)]
    prompts = [s.caption for s in specs]
    rows, reference, ref_judged = {}, None, None
    for part in ("none", "all", *PARTS):
        pipe = with_bf16(args.model, part)
        start = time.perf_counter()
        images = pipe(prompts, seed=0, batch_size=args.batch_size, progress=False).images
        seconds = time.perf_counter() - start
        arrays = np.stack([np.asarray(im, dtype=np.float64) for im in images])
        judged = [judge(im) for im in images]
        if reference is None:
            reference, ref_judged = arrays, judged
        diff = np.abs(arrays - reference)
        rows["fp32" if part == "none" else f"bf16 {part}"] = {
            "all_correct": round(accuracy(images, specs)["all"], 4),
            "colour_changed": changed(judged, ref_judged, "color"),
            "shape_changed": changed(judged, ref_judged, "shape"),
            "mean_abs_diff": round(float(diff.mean()), 3), "max_abs_diff": round(float(diff.max()), 1),
            "seconds": round(seconds, 2)}
    print(f"{'networks in bf16':<22}{'all five':>9}{'colour chg':>11}{'shape chg':>10}{'mean |d|':>9}"
          f"{'max |d|':>8}{'seconds':>9}")
    for name, r in rows.items():
        print(f"{name:<22}{r['all_correct']:>9.3f}{r['colour_changed']:>11}{r['shape_changed']:>10}"
              f"{r['mean_abs_diff']:>9.2f}{r['max_abs_diff']:>8.0f}{r['seconds']:>9.2f}")
    print(json.dumps({"benchmark": "precision", "model": args.model, "prompts": args.n, "rows": rows,
                      "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
