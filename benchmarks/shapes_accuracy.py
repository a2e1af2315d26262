#!/usr/bin/env python
"""Shapes prompt accuracy: how often a generated image shows all five prompted attributes.

Prompts are the canonical captions of ``ShapesDataset(64, seed=--prompt-seed)`` items 0..n-1
(uniform over the grammar); each image is judged by the deterministic pixel-analysis judge of
``tokenizer.data.shapes_judge`` (exact on rendered shapes). For scale, the same judge scores the
model's tokenizer on the real rendered pictures of those prompts: hybrid and discrete-only
reconstructions (what the generator could reach with perfect tokens).

    python benchmarks/shapes_accuracy.py [--model hart-shapes-64] [--n 200] [--grid out.png]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from hart import HARTPipeline
from tokenizer.data.images import image_grid, to_pil
from tokenizer.data.shapes import ShapesDataset
from tokenizer.data.shapes_judge import ATTRIBUTES, accuracy
from tokenizer.reconstruct import reconstruct


def tokenizer_ceiling(pipe: HARTPipeline, data: ShapesDataset, n: int) -> dict[str, dict[str, float]]:
    """Judge scores of the real pictures of the prompts and of the tokenizer's reconstructions of them."""
    specs = [data.spec(i) for i in range(n)]
    rec = reconstruct(pipe.tokenizer, torch.stack([data[i][0] for i in range(n)]))
    return {name: accuracy([to_pil(x) for x in images], specs)
            for name, images in (("real", rec.originals), ("hybrid", rec.hybrid), ("discrete", rec.discrete))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hart-shapes-64", help="shipped model name or pipeline directory")
    parser.add_argument("--n", type=int, default=200, help="number of prompts")
    parser.add_argument("--prompt-seed", type=int, default=10_000, help="seed of the prompt draw")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--batch-size", type=int, default=25, help="images per sampler call")
    parser.add_argument("--cfg-scale", type=float, default=None, help="override the model's CFG scale")
    parser.add_argument("--top-k", type=int, default=None, help="override the model's top-k")
    parser.add_argument("--temperature", type=float, default=None, help="override the model's temperature")
    parser.add_argument("--diffusion-steps", type=int, default=None,
                        help="residual diffusion steps (1: the one-step head when the model has one)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the tokenizer reconstruction rows")
    parser.add_argument("--grid", default="", help="write the first 64 generations as a PNG grid here")
    args = parser.parse_args()

    torch.manual_seed(0)
    pipe = HARTPipeline.from_pretrained(args.model)
    data = ShapesDataset(pipe.tokenizer.config.image_size, seed=args.prompt_seed)
    specs = [data.spec(i) for i in range(args.n)]
    t0 = time.perf_counter()
    images = pipe([s.caption for s in specs], seed=args.seed, batch_size=args.batch_size,
                  cfg_scale=args.cfg_scale, top_k=args.top_k, temperature=args.temperature,
                  diffusion_steps=args.diffusion_steps).images
    seconds = time.perf_counter() - t0
    rows = {"generated": accuracy(images, specs)}
    if not args.no_ceiling:
        rows.update(tokenizer_ceiling(pipe, data, args.n))

    print(f"{'images':<22}" + "".join(f"{a:>11}" for a in (*ATTRIBUTES, "all")))
    for name, scores in rows.items():
        print(f"{name:<22}" + "".join(f"{scores[a]:>11.3f}" for a in (*ATTRIBUTES, "all")))
    if args.grid:
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        image_grid(images[:64], 8).save(args.grid)
        print(f"grid: {args.grid}")
    result = {
        "benchmark": "shapes_accuracy", "model": str(args.model), "prompts": args.n, "seed": args.seed,
        "settings": dataclasses.asdict(pipe.settings),
        "overrides": {"cfg_scale": args.cfg_scale, "top_k": args.top_k, "temperature": args.temperature,
                      "diffusion_steps": args.diffusion_steps},
        "all_correct": round(rows["generated"]["all"], 4),
        "scores": {k: {a: round(v, 4) for a, v in s.items()} for k, s in rows.items()},
        "seconds_per_image": round(seconds / args.n, 4), "batch_size": args.batch_size, "device": "cpu",
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
