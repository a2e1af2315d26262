#!/usr/bin/env python
"""HART against latent-diffusion baselines, side by side: FLOPs, latency, throughput, memory.

    python scripts/bench.py --flops-only [--resolutions 256 512 1024]
    python scripts/bench.py [--device cuda --dtype bf16] [--latency-resolutions 256 512 1024]

FLOPs are counted on the meta device (benchmarks/flops.py, text encoders excluded on both sides),
for HART-0.7B and the PixArt-Sigma-sized and SD3-medium-sized baselines (benchmarks/baselines.py).
Latency (batch 1) and throughput (batch 8) come from benchmarks/speed.py: random weights, one
process per measurement, warm-up, synchronised medians; on a CPU the baselines are timed over
--timed-steps denoising steps and extrapolated (every step costs the same). HART's achieved FLOP/s
is compared with the device's measured matmul peak. Prints the tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ folder of this checkout

HART_TEXT_TOKENS = 300  # benchmarks.flops.HART_TEXT_TOKENS (not imported before argument parsing)
PUBLISHED_MAC_RATIOS_1024 = {"pixart-sigma-0.6b": 86.2 / 12.5, "sd3-medium-2b": 168.0 / 12.5}  # HART Table 1


def hart_name(tokens: int, text_tokens: list[int]) -> str:
    """Row name of HART with ``tokens`` prompt tokens: the first length given is plain 'hart-0.7b'."""
    return "hart-0.7b" if tokens == text_tokens[0] else f"hart-0.7b-t{tokens}"


def flops_table(resolutions: list[int], text_tokens: list[int]) -> dict:
    """FLOPs per image by resolution and model (HART once per prompt length; null prefill per call)."""
    from benchmarks.baselines import BASELINES
    from benchmarks.flops import baseline_flops, hart_flops

    rows = {}
    for r in resolutions:
        rows[r] = {hart_name(t, text_tokens): hart_flops(f"hart-0.7b-{r}", text_tokens=t) for t in text_tokens}
        rows[r].update({name: baseline_flops(b, r) for name, b in BASELINES.items()})
    return rows


def is_hart(name: str) -> bool:
    return name.startswith("hart-0.7b")


def other_harts(models: dict) -> list[str]:
    """The HART rows of further prompt lengths (all but the reference row 'hart-0.7b')."""
    return [n for n in models if is_hart(n) and n != "hart-0.7b"]


def print_flops(rows: dict) -> None:
    for convention in ("all", "linear"):
        title = "everything counted" if convention == "all" else "transformer linear layers only"
        print(f"\nFLOPs per image with CFG, {title} (T = 1e12 FLOPs; MACs are half)")
        print(f"{'px':>5} {'model':<20} {'linear T':>9} {'attn T':>8} {'head T':>8} {'decode T':>9} "
              f"{'total T':>9} {'x HART':>7}")
        for r, models in rows.items():
            hart = models["hart-0.7b"][convention]
            for name, f in models.items():
                total = f[convention]
                print(f"{r:>5} {name:<20} {f['linear'] / 1e12:9.2f} {f['attention'] / 1e12:8.2f} "
                      f"{f['head'] / 1e12:8.2f} {f['decode'] / 1e12:9.2f} {total / 1e12:9.2f} {total / hart:7.2f}")
            for other in other_harts(models):
                against = ", ".join(f"{name} {f[convention] / models[other][convention]:.2f}x"
                                    for name, f in models.items() if not is_hart(name))
                print(f"{r:>5} baseline / {other}: {against}")


def speed_table(args, flops: dict) -> dict:
    from benchmarks.flops import hart_flops
    from benchmarks.speed import matmul_sweep, measure

    timed_steps = args.timed_steps if args.timed_steps is not None else (2 if args.device == "cpu" else 0)
    sweep = matmul_sweep(args.device, args.dtype)
    peak = max(sweep.values())
    rows = {}
    harts = {hart_name(t, args.hart_text_tokens): t for t in args.hart_text_tokens}
    for r in args.latency_resolutions:
        for name in (*harts, "pixart-sigma-0.6b", "sd3-medium-2b"):
            # HART's timed calls reuse the kept null prefix (as HARTPipeline does): count it once.
            per_image = (hart_flops(f"hart-0.7b-{r}", text_tokens=harts[name], keep_null_prefix=True)["all"]
                         if is_hart(name) else flops[r][name]["all"])
            for batch in args.batches:
                kwargs = dict(resolution=r, batch=batch, device=args.device, dtype=args.dtype, repeats=args.repeats)
                if is_hart(name):
                    out = measure("hart", text_tokens=harts[name], **kwargs)
                else:
                    out = measure(name, timed_steps=timed_steps or None, **kwargs)
                out["images_per_s"] = batch / out["seconds"]
                out["flops_per_s"] = per_image * batch / out["seconds"]
                rows.setdefault(r, {}).setdefault(name, {})[batch] = out
                print(f"  measured {r} px {name} batch {batch}: {out['seconds']:.2f} s", file=sys.stderr)
    print(f"\nSpeed on {args.device} ({args.dtype}); matmul peak {peak / 1e12:.3f} TFLOP/s (best of "
          + ", ".join(f"{k} {v / 1e12:.3f}" for k, v in sweep.items()) + ")")
    print(f"{'px':>5} {'model':<20} {'batch':>5} {'latency s':>10} {'img/s':>8} {'peak GB':>8} "
          f"{'TFLOP/s':>8} {'% peak':>7} {'x HART':>7}")
    for r, models in rows.items():
        for name, by_batch in models.items():
            for batch, out in by_batch.items():
                ratio = out["seconds"] / rows[r]["hart-0.7b"][batch]["seconds"]
                note = f" (extrapolated from {out['extrapolated_from_steps']} steps)" \
                    if out["extrapolated_from_steps"] else ""
                print(f"{r:>5} {name:<20} {batch:>5} {out['seconds']:10.2f} {out['images_per_s']:8.3f} "
                      f"{out['peak_memory_bytes'] / 2**30:8.2f} {out['flops_per_s'] / 1e12:8.3f} "
                      f"{100 * out['flops_per_s'] / peak:6.1f}% {ratio:7.2f}{note}")
    for r, models in rows.items():
        for hart in other_harts(models):
            for batch, out in models[hart].items():
                against = ", ".join(f"{name} {models[name][batch]['seconds'] / out['seconds']:.2f}x"
                                    for name in models if not is_hart(name))
                print(f"{r:>5} px batch {batch}: baseline / {hart}: {against}")
    return {"matmul_peak_flops_per_s": peak, "matmul_sweep_flops_per_s": sweep, "timed_steps": timed_steps,
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flops-only", action="store_true", help="count FLOPs only (fast, no timing)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024],
                        help="image sizes of the FLOPs table (default: %(default)s)")
    parser.add_argument("--latency-resolutions", type=int, nargs="+", default=[256],
                        help="image sizes timed (default: %(default)s)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8],
                        help="batch sizes timed: latency at the first, throughput at the others (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="weights and activations")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--json-out", type=Path, default=None,
                        help="also write the final JSON line to this file (benchmarks/plot_speed.py reads it)")
    parser.add_argument("--hart-text-tokens", type=int, nargs="+", default=[HART_TEXT_TOKENS],
                        help="HART prompt lengths measured; the first is the reference row 'hart-0.7b' "
                             "(default: %(default)s, the baselines' fixed padding; HART pads to the longest prompt)")
    parser.add_argument("--timed-steps", type=int, default=None,
                        help="baseline denoising steps actually timed (default: 2 on cpu, all elsewhere; 0: all)")
    args = parser.parse_args()

    import torch

    resolutions = sorted(set(args.resolutions) | (set() if args.flops_only else set(args.latency_resolutions)))
    rows = flops_table(resolutions, args.hart_text_tokens)
    print_flops(rows)
    speed = None if args.flops_only else speed_table(args, rows)
    ratios = {r: {name: {c: round(f[c] / models["hart-0.7b"][c], 2) for c in ("all", "linear")}
                  for name, f in models.items() if not is_hart(name)} for r, models in rows.items()}
    for r, models in rows.items():  # the same ratios against each further prompt length
        for hart in other_harts(models):
            ratios[r][f"vs {hart}"] = {name: {c: round(f[c] / models[hart][c], 2) for c in ("all", "linear")}
                                       for name, f in models.items() if not is_hart(name)}
    line = json.dumps({"benchmark": "bench", "date": str(date.today()), "torch": torch.__version__,
                       "flops": {str(r): m for r, m in rows.items()}, "ratios": {str(r): v for r, v in ratios.items()},
                       "published_mac_ratios_1024": PUBLISHED_MAC_RATIOS_1024, "device": args.device,
                       "dtype": args.dtype, "speed": speed})
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")


if __name__ == "__main__":
    main()
