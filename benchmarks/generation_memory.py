"""Resident memory over many generations: a leak shows as RSS that keeps growing.

    python benchmarks/generation_memory.py [--model hart-shapes-64] [--images 1000] [--every 100]

Generates ``--images`` images one call of ``--batch-size`` at a time (prompts cycle through the
model's demo prompts, seeds change every call) and reads the process's resident set size (from
/proc/self/statm, current, not peak) every ``--every`` images. Prints a table and one JSON line;
the last column is the growth since the reading after the first ``--every`` images (the first
calls allocate the working memory of the sampler).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hart-shapes-64", help="shipped model or directory")
    parser.add_argument("--images", type=int, default=1000, help="images in all (default: %(default)s)")
    parser.add_argument("--every", type=int, default=100, help="images between readings (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per call (default: %(default)s)")
    args = parser.parse_args()
    from hart import HARTPipeline
    from hart.cli import DEMO_PROMPTS

    pipe = HARTPipeline.from_pretrained(args.model)
    prompts = DEMO_PROMPTS.get(args.model, ("a picture",))
    readings, done, t0 = [(0, rss_mb())], 0, time.perf_counter()
    while done < args.images:
        batch = [prompts[(done + i) % len(prompts)] for i in range(min(args.batch_size, args.images - done))]
        pipe(batch, seed=done, progress=False)
        before, done = done, done + len(batch)
        if done // args.every > before // args.every or done == args.images:
            readings.append((done, rss_mb()))
    seconds = time.perf_counter() - t0
    print(f"{'images':>7} {'RSS MB':>8} {'growth MB':>10}")
    for n, mb in readings:
        print(f"{n:>7} {mb:>8.1f} {mb - readings[1][1] if len(readings) > 1 and n else 0.0:>10.1f}")
    print(json.dumps({"benchmark": "generation_memory", "model": args.model, "device": "cpu",
                      "machine": platform.machine(), "batch_size": args.batch_size,
                      "images": done, "seconds": round(seconds, 1),
                      "rss_mb": [[n, round(mb, 1)] for n, mb in readings]}))


if __name__ == "__main__":
    main()
