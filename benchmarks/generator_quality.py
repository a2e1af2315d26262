#!/usr/bin/env python
"""FID, prompt fidelity and CPU speed of a shipped generator (shapes or emoji).

FID (offline InceptionV3, ``hart.fid``) of generated images against real ones, next to the FID of
the model's own tokenizer reconstructions of real images, hybrid and discrete-only (the floor the
generator can reach through its tokens, and how much the residual path buys), and of real against
real (the noise floor of the sample sizes).

- shapes: real = rendered shapes. Prompts are the captions of ``ShapesDataset(seed=10_000)`` items
  0..n-1; the reference set is 2n other rendered shapes (seed 20_000). Reconstructions and the
  real-vs-real row use the n real pictures of the prompts.
- emoji: real = every emoji of ``EmojiDataset`` (the reference set). Prompts are the names of n
  emoji drawn without replacement (seed 0). Fidelity: how often the prompted emoji is the nearest
  real emoji to the generated image in Inception feature space (top-1) or among the 5 nearest.

Inception features are cached under ``--cache-dir`` by the pixels of each image set, so the
reference set and the reconstructions are embedded once per model.

Speed: seconds per image at batch 1 and batch 16 on this CPU (median of --repeats timed calls
after one warm-up call).

    python benchmarks/generator_quality.py --model hart-shapes-64 --data shapes [--n 1000]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ package of this checkout
from benchmarks.speed import timed  # noqa: E402
from hart import HARTPipeline
from hart.data import EmojiDataset, ShapesDataset
from hart.fid import InceptionFeatures, fid
from tokenizer.data.images import to_pil, to_tensor
from tokenizer.reconstruct import reconstruct

PROMPT_SEED, REFERENCE_SEED = 10_000, 20_000


def real_sets(data: str, size: int, n: int, prompt_seed: int = 0):
    """(prompts, real pictures of the prompts, reference pictures, prompted emoji indices or None)."""
    if data == "shapes":
        prompts_ds, ref_ds = ShapesDataset(size, PROMPT_SEED), ShapesDataset(size, REFERENCE_SEED)
        pairs = [prompts_ds[i] for i in range(n)]
        reference = [to_pil(ref_ds[i][0]) for i in range(2 * n)]
        return [c for _, c in pairs], [to_pil(x) for x, _ in pairs], reference, None
    emoji = EmojiDataset(size)
    picked = np.random.default_rng(prompt_seed).choice(len(emoji), size=min(n, len(emoji)), replace=False)
    reference = [emoji.image(j) for j in range(len(emoji))]
    return [emoji.names[j] for j in picked], [reference[j] for j in picked], reference, picked


def reconstructions(pipe: HARTPipeline, images) -> tuple[list, list]:
    """Hybrid and discrete-only reconstructions of PIL ``images`` by the model's tokenizer."""
    rec = reconstruct(pipe.tokenizer, torch.stack([to_tensor(im) for im in images]), batch_size=100)
    return [to_pil(x) for x in rec.hybrid], [to_pil(x) for x in rec.discrete]


def nearest_ranks(gen_feats: np.ndarray, ref_feats: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (0 = nearest) of each target among the reference features, by L2 distance."""
    d = (gen_feats ** 2).sum(1, keepdims=True) - 2 * gen_feats @ ref_feats.T + (ref_feats ** 2).sum(1)[None]
    target_d = d[np.arange(len(targets)), targets]
    return (d < target_d[:, None]).sum(1)


def seconds_per_image(pipe: HARTPipeline, prompt: str, batch: int, repeats: int, **settings) -> float:
    """Median seconds per image of ``repeats`` calls at ``batch`` after a warm-up call."""
    return timed(lambda: pipe([prompt] * batch, seed=0, batch_size=batch, progress=False, **settings),
                 pipe.device, repeats) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hart-shapes-64", help="shipped model name or pipeline directory")
    parser.add_argument("--data", choices=("shapes", "emoji"), default="shapes", help="what the model draws")
    parser.add_argument("--n", type=int, default=1000, help="generated images (and prompts)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--batch-size", type=int, default=50, help="images per sampler call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size")
    parser.add_argument("--cache-dir", default="outputs/fid-cache",
                        help="Inception features of fixed image sets, keyed by their pixels ('' = no cache)")
    parser.add_argument("--prompt-seed", type=int, default=0,
                        help="emoji: seed of the prompted names (tune settings on another seed than the report's)")
    parser.add_argument("--cfg-scale", type=float, default=None, help="override the model's CFG scale")
    parser.add_argument("--top-k", type=int, default=None, help="override the model's top-k")
    parser.add_argument("--temperature", type=float, default=None, help="override the model's temperature")
    parser.add_argument("--generated-only", action="store_true",
                        help="skip the reconstruction and real-vs-real rows and the speed timing (compare checkpoints)")
    parser.add_argument("--diffusion-steps", type=int, default=None,
                        help="residual diffusion steps (1: the one-step head when the model has one)")
    args = parser.parse_args()

    torch.manual_seed(0)
    pipe = HARTPipeline.from_pretrained(args.model)
    size = pipe.tokenizer.config.image_size
    prompts, real, reference, targets = real_sets(args.data, size, args.n, args.prompt_seed)
    steps = {k: v for k, v in (("diffusion_steps", args.diffusion_steps), ("cfg_scale", args.cfg_scale),
                               ("top_k", args.top_k), ("temperature", args.temperature)) if v is not None}
    generated = pipe(prompts, seed=args.seed, batch_size=args.batch_size, **steps).images
    inception = InceptionFeatures(cache_dir=args.cache_dir or None)
    ref_feats = inception(reference, progress=True)
    feats = {"generated": inception(generated, progress=True)}
    if not args.generated_only:
        hybrid, discrete = reconstructions(pipe, real)
        feats.update({"tokenizer hybrid": inception(hybrid), "tokenizer discrete": inception(discrete),
                      "real (prompts)": inception(real)})
    fids = {name: fid(f, ref_feats) for name, f in feats.items()}
    result = {"benchmark": "generator_quality", "model": str(args.model), "data": args.data, "n": len(prompts),
              "settings": {**dataclasses.asdict(pipe.settings), **steps}, "prompt_seed": args.prompt_seed,
              "reference": len(reference), "fid": {k: round(v, 2) for k, v in fids.items()}}
    print(f"{'images vs reference':<22} {'FID':>8}   ({len(prompts)} vs {len(reference)} images)")
    for name, value in fids.items():
        print(f"{name:<22} {value:8.2f}")
    if targets is not None:
        ranks = nearest_ranks(feats["generated"], ref_feats, targets)
        result["fidelity"] = {"top1": round(float((ranks < 1).mean()), 4), "top5": round(float((ranks < 5).mean()), 4)}
        print(f"fidelity: top-1 {result['fidelity']['top1']:.3f}, top-5 {result['fidelity']['top5']:.3f}")
        if "tokenizer hybrid" in feats:
            real_ranks = nearest_ranks(feats["tokenizer hybrid"], ref_feats, targets)
            result["fidelity"]["tokenizer_top1"] = round(float((real_ranks < 1).mean()), 4)
            print(f"tokenizer reconstructions top-1 {result['fidelity']['tokenizer_top1']:.3f}")
    if args.generated_only:
        print(json.dumps(result))
        return
    speed = {f"batch_{b}": round(seconds_per_image(pipe, prompts[0], b, args.repeats, **steps), 4) for b in (1, 16)}
    print(f"seconds per image: batch 1 {speed['batch_1']:.3f}, batch 16 {speed['batch_16']:.3f}")
    result.update(seconds_per_image=speed, device="cpu", cpu=platform.processor() or platform.machine(),
                  threads=torch.get_num_threads(), torch=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
