#!/usr/bin/env python
"""HART against latent-diffusion baselines, side by side: FLOPs per image (and, later, latency).

    python scripts/bench.py --flops-only [--resolutions 256 512 1024]

FLOPs are counted on the meta device (benchmarks/flops.py, text encoders excluded on both sides),
for HART-0.7B and the PixArt-Sigma-sized and SD3-medium-sized baselines (benchmarks/baselines.py).
Prints one table per convention, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ folder of this checkout

PUBLISHED_MAC_RATIOS_1024 = {"pixart-sigma-0.6b": 86.2 / 12.5, "sd3-medium-2b": 168.0 / 12.5}  # HART Table 1


def flops_table(resolutions: list[int]) -> dict:
    from benchmarks.baselines import BASELINES
    from benchmarks.flops import baseline_flops, hart_flops

    rows = {}
    for r in resolutions:
        rows[r] = {"hart-0.7b": hart_flops(f"hart-0.7b-{r}")}
        rows[r].update({name: baseline_flops(b, r) for name, b in BASELINES.items()})
    return rows


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flops-only", action="store_true", help="count FLOPs only (fast, no timing)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024],
                        help="image sizes of the FLOPs table (default: %(default)s)")
    args = parser.parse_args()
    if not args.flops_only:
        parser.error("only --flops-only is implemented so far (latency: see issue 5)")

    import torch

    rows = flops_table(args.resolutions)
    print_flops(rows)
    ratios = {r: {name: {c: round(f[c] / models["hart-0.7b"][c], 2) for c in ("all", "linear")}
                  for name, f in models.items() if name != "hart-0.7b"} for r, models in rows.items()}
    print(json.dumps({"benchmark": "bench", "date": str(date.today()), "torch": torch.__version__,
                      "flops": {str(r): m for r, m in rows.items()}, "ratios": {str(r): v for r, v in ratios.items()},
                      "published_mac_ratios_1024": PUBLISHED_MAC_RATIOS_1024}))


if __name__ == "__main__":
    main()
