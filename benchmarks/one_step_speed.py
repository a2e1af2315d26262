"""Sampler time per image with the 8-step residual head against one step (distilled and naive).

    python benchmarks/one_step_speed.py --model DIR_WITH_ONE_STEP_HEAD [--repeats 5]

Rows: the pipeline's 8-step head; its one-step head (``diffusion_steps=1``); the same pipeline
without the one-step head at one step (the teacher run naively). Whole sampler (text encoding to
decoded image), batch 1 and 16, median of ``--repeats`` timed calls after a warm-up
(``benchmarks.speed.timed``). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ package of this checkout
from benchmarks.speed import timed  # noqa: E402
from hart import HARTPipeline  # noqa: E402

PROMPT = "a large red circle at the center on a white background"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="pipeline directory (or shipped name) with a one-step head")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row (default: %(default)s)")
    args = parser.parse_args()
    pipe = HARTPipeline.from_pretrained(args.model)
    if pipe.head_1step is None:
        raise SystemExit(f"{args.model} has no one-step head (diffusion_head_1step/): "
                         "distil one with hart distill-head")
    naive = copy.copy(pipe)
    naive.head_1step, naive.one_step = None, None
    rows = []
    runs = (("8-step head", pipe, 8), ("one-step head (DMD)", pipe, 1), ("8-step head at 1 step", naive, 1))
    for name, p, steps in runs:
        for batch in (1, 16):
            s = timed(lambda p=p, b=batch, n=steps: p([PROMPT] * b, seed=0, batch_size=b, progress=False,
                                                      diffusion_steps=n), pipe.device, args.repeats) / batch
            rows.append({"head": name, "diffusion_steps": steps, "batch": batch, "s_per_image": s})
    base = {r["batch"]: r["s_per_image"] for r in rows if r["diffusion_steps"] == 8}
    print(f"{'head':<24} {'batch':>5} {'ms/image':>9} {'vs 8-step':>9}")
    for r in rows:
        speedup = base[r["batch"]] / r["s_per_image"]
        print(f"{r['head']:<24} {r['batch']:>5} {1000 * r['s_per_image']:>9.1f} {speedup:>8.2f}x")
    print(json.dumps({"benchmark": "one_step_speed", "model": str(args.model), "device": "cpu",
                      "threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
