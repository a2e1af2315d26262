#!/usr/bin/env python
"""Does torch.compile speed up HART's residual diffusion head? Eager against compiled, one device.

    python benchmarks/compile_head.py [--preset hart-0.7b-256] [--device cpu]

Times the head's 8 sampling steps over all final-scale tokens with CFG (2 x p_K^2 rows, one call
per step, as ``hart.sampler`` batches them), random weights, median of 5 rounds after a warm-up,
and checks that both give the same output. Prints one line of results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


STEPS = 8  # the sampler's residual-diffusion steps, one head call each


def main() -> None:
    from benchmarks.speed import synchronize, timed
    from hart.config import HEAD_PRESETS
    from hart.diffusion_head import DiffusionHead
    from hart.pipeline import PIPELINE_PRESETS
    from tokenizer.config import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hart-0.7b-256", help="pipeline preset (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    args = parser.parse_args()
    p = PIPELINE_PRESETS[args.preset]
    cfg = HEAD_PRESETS[p.head]
    rows = 2 * PRESETS[p.tokenizer].patch_nums[-1] ** 2
    torch.manual_seed(0)
    head = DiffusionHead(cfg).eval().to(args.device)
    for m in head.modules():  # adaLN-Zero starts at zero: use non-zero weights so every layer computes
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
    inputs = (torch.randn(rows, cfg.latent_channels, device=args.device),
              torch.full((rows,), 500, device=args.device), torch.randn(rows, cfg.cond_dim, device=args.device))
    device = torch.device(args.device)
    with torch.no_grad():
        eager = timed(lambda: [head(*inputs) for _ in range(STEPS)], device, repeats=5)
        start = time.perf_counter()
        compiled = torch.compile(head)
        compiled(*inputs)
        synchronize(device)
        compile_s = time.perf_counter() - start
        fast = timed(lambda: [compiled(*inputs) for _ in range(STEPS)], device, repeats=5)
        diff = (compiled(*inputs) - head(*inputs)).abs().max().item()
    print(f"{args.preset} head, {STEPS} steps x {rows} rows on {args.device}: eager {eager:.3f} s, "
          f"compiled {fast:.3f} s ({eager / fast:.2f}x), first compiled call {compile_s:.0f} s, "
          f"max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
