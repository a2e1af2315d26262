#!/usr/bin/env python
"""Plot FLOPs and latency against resolution for HART and the diffusion baselines.

    python benchmarks/plot_speed.py   # the committed benchmarks/bench-*.json -> outputs/speed-vs-resolution.png
    python benchmarks/plot_speed.py benchmarks/bench-flops.json my-run.json --out benchmarks/speed-vs-resolution.png

Reads the JSON lines that ``scripts/bench.py --json-out`` writes (any number of files: FLOPs come
from every file, latencies at batch 1 from those with a ``speed`` section, one curve per device and dtype).
Left panel: FLOPs per image (everything counted, with CFG); right panel: batch-1 latency.
Both axes are logarithmic, so the ratio baseline / HART is the vertical gap.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

MODELS = {"hart-0.7b": ("HART-0.7B", "tab:red"), "pixart-sigma-0.6b": ("PixArt-Sigma-sized", "tab:blue"),
          "sd3-medium-2b": ("SD3-medium-sized", "tab:green")}
DEVICE_STYLES = ("o-", "s--", "^:")
SHORT_PROMPT_COLOURS = ("tab:orange", "tab:purple", "tab:brown")


def models_in(names) -> dict[str, tuple[str, str]]:
    """Label and colour of each model: MODELS, plus HART rows with other prompt lengths ('hart-0.7b-t77')."""
    extra = sorted(n for n in set(names) if n.startswith("hart-0.7b-t"))
    styles = {n: (f"HART-0.7B, {n.removeprefix('hart-0.7b-t')}-token prompt", SHORT_PROMPT_COLOURS[i % 3])
              for i, n in enumerate(extra)}
    return {**MODELS, **styles}


def load(paths: list[Path]) -> list[dict]:
    lines = []
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist; write it with python scripts/bench.py --json-out {p}")
        lines.append(json.loads(p.read_text().strip().splitlines()[-1]))
    return lines


def plot(lines: list[dict], out: Path) -> Path:
    fig, (ax_f, ax_t) = plt.subplots(1, 2, figsize=(11, 5.6))
    flops: dict[str, dict[int, float]] = {}
    for line in lines:
        for r, models in line["flops"].items():
            for name, f in models.items():
                flops.setdefault(name, {})[int(r)] = f["all"] / 1e12
    styles = models_in(flops)
    for name, (label, colour) in styles.items():
        pts = sorted(flops.get(name, {}).items())
        if pts:
            ax_f.plot(*zip(*pts, strict=True), "o-", color=colour, label=label)
    ax_f.set(xscale="log", yscale="log", xlabel="resolution (px)", ylabel="TFLOPs per image (all, CFG)",
             title="FLOPs per image")
    timed: dict[tuple[str, str], dict] = {}  # runs of one device and dtype (e.g. 256 px, 512 px) form one curve
    for line in lines:
        if line.get("speed"):
            merged = timed.setdefault((line["device"], line["dtype"]),
                                      {"device": line["device"], "dtype": line["dtype"], "speed": {"rows": {}}})
            merged["speed"]["rows"].update(line["speed"]["rows"])
    for i, line in enumerate(timed.values()):
        for name, (label, colour) in styles.items():
            pts = sorted((int(r), models[name]["1"]["seconds"]) for r, models in line["speed"]["rows"].items()
                         if name in models and "1" in models[name])
            if pts:
                ax_t.plot(*zip(*pts, strict=True), DEVICE_STYLES[i % len(DEVICE_STYLES)], color=colour,
                          label=f"{label} ({line['device']} {line['dtype']})")
                for r, sec in pts:
                    ax_t.annotate(f"{sec:.3g} s", (r, sec), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ax_t.set(xscale="log", yscale="log", xlabel="resolution (px)", ylabel="seconds per image (batch 1)",
             title="Latency, batch 1")
    for ax in (ax_f, ax_t):
        ticks = sorted({r for pts in flops.values() for r in pts})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(min(ticks) / 1.2, max(ticks) * 1.2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: no data hidden
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="*",
                        help="JSON files of scripts/bench.py --json-out (default: benchmarks/bench-*.json)")
    parser.add_argument("--out", type=Path, default=Path("outputs/speed-vs-resolution.png"),
                        help="PNG to write (default: %(default)s; the README's is benchmarks/speed-vs-resolution.png)")
    args = parser.parse_args()
    results = args.results or sorted(Path(__file__).parent.glob("bench-*.json"))
    if not results:
        parser.error("no JSON files given and none committed in benchmarks/")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(plot(load(results), args.out))


if __name__ == "__main__":
    main()
