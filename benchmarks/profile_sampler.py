#!/usr/bin/env python
"""Where HART's sampler spends its time: a torch.profiler table of one ``generate`` call.

    python benchmarks/profile_sampler.py [--preset hart-0.7b-256] [--batch 1] [--device cpu] [--dtype fp32]

Builds the preset's transformer, head and tokenizer with random weights (text encoder excluded,
random all-valid text states as in benchmarks/flops.py), runs one warm-up call, then profiles one
call and groups the operators' self time into matmuls (linear layers), attention (SDPA), convs
(tokenizer decode), sampling (top-k / softmax / multinomial) and everything else (norms,
elementwise, copies, Python overhead shows up as the gap between the wall time and the op total).
Prints the table of the 15 most expensive ops, the groups, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.flops import hart_text  # noqa: E402
from benchmarks.speed import DTYPES, synchronize  # noqa: E402
from hart.pipeline import HARTPipeline  # noqa: E402
from hart.sampler import NullPrefix, SamplingSettings, generate  # noqa: E402

GROUPS = {
    "matmul": ("aten::addmm", "aten::mm", "aten::bmm", "aten::linear", "aten::matmul"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_efficient_attention",
                  "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_cudnn_attention",
                  "aten::_scaled_dot_product_attention_math"),
    "conv": ("aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::cudnn_convolution",
             "aten::conv2d", "aten::_slow_conv2d_forward"),
    "resample": ("aten::_adaptive_avg_pool2d", "aten::upsample_bicubic2d", "aten::upsample_bilinear2d",
                 "aten::upsample_nearest2d"),
    "sampling": ("aten::topk", "aten::sort", "aten::multinomial", "aten::softmax", "aten::_softmax",
                 "aten::cumsum", "aten::masked_fill"),
}


def group_of(name: str) -> str:
    return next((g for g, ops in GROUPS.items() if name in ops), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hart-0.7b-256", help="pipeline preset (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    pipe = HARTPipeline.from_preset(args.preset, device=device)
    ar, head, tok = (m.to(dtype) for m in (pipe.transformer, pipe.head, pipe.tokenizer))
    text, null = hart_text(args.batch, ar.config.text_dim, device, dtype)

    prefix = NullPrefix.compute(ar, null)  # kept across calls, as HARTPipeline does

    def run():
        out = generate(ar, head, tok, text, null, SamplingSettings(), torch.Generator(device).manual_seed(0),
                       null_prefix=prefix)
        synchronize(device)
        return out

    run()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        run()
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    use_device = device.type == "cuda"
    timeof = (lambda e: e.self_device_time_total) if use_device else (lambda e: e.self_cpu_time_total)
    rows = sorted(((e.key, timeof(e) / 1e6, e.count) for e in events), key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    print(f"{args.preset}, batch {args.batch}, {args.device} {args.dtype}: wall {wall:.2f} s "
          f"(profiled), op self time {total:.2f} s")
    print(f"{'op':<55} {'calls':>7} {'s':>8} {'share':>7}")
    for name, s, n in rows[:15]:
        print(f"{name[:55]:<55} {n:>7} {s:8.3f} {100 * s / total:6.1f}%")
    groups: dict[str, float] = {}
    for name, s, _ in rows:
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + s
    print("\nby group: " + ", ".join(f"{g} {s:.2f} s ({100 * s / total:.1f}%)" for g, s in
                                     sorted(groups.items(), key=lambda kv: -kv[1])))
    print(json.dumps({"benchmark": "profile_sampler", "preset": args.preset, "batch": args.batch,
                      "device": args.device, "dtype": args.dtype, "wall_s": wall, "op_s": total,
                      "groups_s": groups, "top_ops": rows[:15], "torch": torch.__version__}))


if __name__ == "__main__":
    main()
