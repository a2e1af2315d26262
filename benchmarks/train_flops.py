#!/usr/bin/env python
"""Training FLOPs per image of HART (transformer + head) and of the diffusion baseline (DiT).

Counts one forward + backward of each trainer's loss on a batch of real training images with
``torch.utils.flop_counter`` (frozen tokenizer encode included; the text encoder's output is cached
in both trainers, so it is not counted), and the steps at which the baseline matches the compute
of a HART recipe.

    python benchmarks/train_flops.py [--data shapes] [--tokenizer hart/pretrained/hart-shapes-64/tokenizer] \
        [--hart-steps 3000] [--batch-size 32]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hart.dit.train import DiTTrainConfig, DiTTrainer  # noqa: E402
from hart.train import HARTTrainConfig, HARTTrainer  # noqa: E402


def flops_per_image(trainer, batch: int) -> float:
    items = list(range(batch))
    pairs = [trainer.data[i] for i in items]
    images, captions = torch.stack([x for x, _ in pairs]), [c for _, c in pairs]
    trainer.loss(items, images, captions)  # fills the caption cache
    with FlopCounterMode(display=False) as counter:
        trainer.objective(trainer.loss(items, images, captions)).backward()
    return counter.get_total_flops() / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="shapes")
    parser.add_argument("--tokenizer", default="hart/pretrained/hart-shapes-64/tokenizer")
    parser.add_argument("--preset", default="cpu-64")
    parser.add_argument("--hart-steps", type=int, default=3000, help="steps of the HART recipe to match")
    parser.add_argument("--batch-size", type=int, default=32, help="batch of both recipes")
    parser.add_argument("--count-batch", type=int, default=8, help="images per counted step")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(data=args.data, preset=args.preset, tokenizer=args.tokenizer, steps=1)
        hart = flops_per_image(HARTTrainer(HARTTrainConfig(out_dir=f"{tmp}/h", **common)), args.count_batch)
        dit = flops_per_image(DiTTrainer(DiTTrainConfig(out_dir=f"{tmp}/d", **common)), args.count_batch)
    total = hart * args.hart_steps * args.batch_size
    dit_steps = round(total / (dit * args.batch_size))
    print(f"{'trainer':<10}{'GFLOPs/image':>14}{'steps x batch':>16}{'PFLOPs in all':>15}")
    print(f"{'HART':<10}{hart / 1e9:>14.3f}{f'{args.hart_steps} x {args.batch_size}':>16}{total / 1e15:>15.3f}")
    print(f"{'DiT':<10}{dit / 1e9:>14.3f}{f'{dit_steps} x {args.batch_size}':>16}{total / 1e15:>15.3f}")
    print(json.dumps({"benchmark": "train_flops", "data": args.data, "preset": args.preset,
                      "hart_flops_per_image": hart, "dit_flops_per_image": dit, "hart_steps": args.hart_steps,
                      "dit_steps_equal_compute": dit_steps, "batch_size": args.batch_size}))


if __name__ == "__main__":
    main()
