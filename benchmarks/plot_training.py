#!/usr/bin/env python
"""Plot the loss curves of a training run's ``log.jsonl`` (one panel per key) into a PNG.

    python benchmarks/plot_training.py runs/hart-shapes-64/log.jsonl --keys ce diffusion token_acc \
        --out benchmarks/hart-shapes-64-loss.png

Prints the first and last value of each key (mean of the first and last 5 log lines), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SMOOTH = 5  # log lines averaged for the first/last figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="log.jsonl of a run (one JSON object per logged step)")
    parser.add_argument("--keys", nargs="+", default=["loss"], help="logged values to plot")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default="", help="figure title (default: the log's folder name)")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.strip()]
    missing = [k for k in args.keys if not any(k in r for r in rows)]
    if not rows or missing:
        raise SystemExit(f"{args.log}: no log lines, or no values for {missing}")
    fig, axes = plt.subplots(1, len(args.keys), figsize=(4 * len(args.keys), 3), squeeze=False)
    summary = {}
    for ax, key in zip(axes[0], args.keys, strict=True):
        points = [(r["step"], r[key]) for r in rows if key in r]
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, linewidth=1)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        first, last = sum(values[:SMOOTH]) / len(values[:SMOOTH]), sum(values[-SMOOTH:]) / len(values[-SMOOTH:])
        summary[key] = {"first": round(first, 4), "last": round(last, 4),
                        "first_step": steps[0], "last_step": steps[-1]}
        print(f"{key:<14} step {steps[0]:>6}: {first:9.4f}   step {steps[-1]:>6}: {last:9.4f}")
    fig.suptitle(args.title or Path(args.log).parent.name)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(json.dumps({"benchmark": "plot_training", "log": args.log, "out": args.out, "curves": summary}))


if __name__ == "__main__":
    main()
