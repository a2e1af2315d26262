"""Training throughput of both trainers in fp32 and with bf16 autocast, against the matmul peaks.

    python benchmarks/train_throughput.py [--steps 4] [--bf16-steps 1] [--batch-size 32]

For each trainer (tokenizer ``cpu-f8-64`` on shapes; transformer + head ``cpu-64`` on shapes with
hart-shapes-64's tokenizer, the shipped recipes' models; with ``--emoji`` also on emoji with
hart-emoji-64's tokenizer, without and with the token cache, whose fill is timed apart) and each
precision (``no``: fp32; ``bf16``: accelerate's autocast, fp32 master weights), one warm-up step, then ``--steps`` timed
steps (``--bf16-steps`` for bf16). FLOPs of one step are counted with torch's FlopCounterMode
(forward + backward, the frozen tokenizer's encode included), so "TFLOP/s" is work done per
second, compared with the best matmul rate of this device in fp32 and in bf16 (a sweep of shapes;
small shapes for bf16, which may be emulated). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks/ package of this checkout
from benchmarks.speed import PEAK_SHAPES, matmul_peak  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES_TOKENIZER = ROOT / "hart" / "pretrained" / "hart-shapes-64" / "tokenizer"
EMOJI_TOKENIZER = ROOT / "hart" / "pretrained" / "hart-emoji-64" / "tokenizer"
BF16_PEAK_SHAPES = ((512, 512, 512), (1024, 1024, 1024))  # bf16 without hardware support is slow


def build(kind: str, precision: str, batch: int, steps: int, out: Path):
    common = dict(out_dir=str(out), steps=steps, batch_size=batch, warmup_steps=1, log_every=1, sample_every=0,
                  ckpt_every=0, mixed_precision=precision)
    if kind == "tokenizer":
        from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer

        return TokenizerTrainer(TokenizerTrainConfig(model="cpu-f8-64", data=("shapes",), **common))
    from hart.train import HARTTrainConfig, HARTTrainer

    if kind == "hart":
        return HARTTrainer(HARTTrainConfig(preset="cpu-64", data="shapes", tokenizer=str(SHAPES_TOKENIZER), **common))
    trainer = HARTTrainer(HARTTrainConfig(preset="cpu-64", data="emoji", tokenizer=str(EMOJI_TOKENIZER), **common))
    if kind == "hart-emoji":
        trainer.token_cache = None  # encode every batch, as before the cache
    else:  # "hart-emoji-cached": the steady state, every glyph's tokens already computed (timed apart)
        t0 = time.perf_counter()
        for i in range(len(trainer.data)):
            trainer.token_cache.encode([i], trainer.data[i][0][None])
        print(f"token cache filled: {len(trainer.data)} emoji in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return trainer


def measure(kind: str, precision: str, batch: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(kind, precision, batch, steps + 2, Path(tmp))
        trainer.run(until=1)  # warm-up
        with FlopCounterMode(display=False) as counter:
            trainer.run(until=2)
        flops = counter.get_total_flops()
        t0 = time.perf_counter()
        trainer.run(until=2 + steps)
        seconds = (time.perf_counter() - t0) / steps
        last = trainer.history[-1]
    loss = {k: last[k] for k in ("loss", "rec", "ce", "diffusion") if k in last}
    return {"trainer": kind, "precision": precision, "batch": batch, "s_per_step": seconds,
            "images_s": batch / seconds, "tflop_per_step": flops / 1e12, "tflop_s": flops / seconds / 1e12,
            "last_losses": loss}


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def measure_isolated(*args) -> dict:
    """``measure`` in a fresh process: accelerate's precision is fixed once per process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed fp32 steps (default: %(default)s)")
    parser.add_argument("--bf16-steps", type=int, default=1, help="timed bf16 steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default: %(default)s)")
    parser.add_argument("--emoji", action="store_true",
                        help="add HART rows on emoji without and with the token cache (needs the emoji font)")
    args = parser.parse_args()
    peaks = {"fp32": matmul_peak("cpu", "fp32", 3, PEAK_SHAPES[:2]) / 1e12,
             "bf16": matmul_peak("cpu", "bf16", 2, BF16_PEAK_SHAPES) / 1e12}
    rows = []
    runs = [(kind, precision, steps) for kind in ("tokenizer", "hart")
            for precision, steps in (("no", args.steps), ("bf16", args.bf16_steps))]
    if args.emoji:
        runs += [("hart-emoji", "no", args.steps), ("hart-emoji-cached", "no", args.steps)]
    for kind, precision, steps in runs:
        row = measure_isolated(kind, precision, args.batch_size, steps)
        peak = peaks["bf16" if precision == "bf16" else "fp32"]
        row.update(peak_tflop_s=peak, of_peak=row["tflop_s"] / peak)
        rows.append(row)
    print(f"matmul peak on this device: fp32 {peaks['fp32']:.4f} TFLOP/s, bf16 {peaks['bf16']:.4f} TFLOP/s")
    print(f"{'trainer':<18} {'precision':<9} {'s/step':>8} {'images/s':>9} {'TFLOP/step':>11} {'TFLOP/s':>8} "
          f"{'% of peak':>9}")
    for r in rows:
        print(f"{r['trainer']:<18} {r['precision']:<9} {r['s_per_step']:>8.2f} {r['images_s']:>9.2f} "
              f"{r['tflop_per_step']:>11.4f} {r['tflop_s']:>8.4f} {100 * r['of_peak']:>8.1f}%")
    print(json.dumps({"benchmark": "train_throughput", "device": "cpu", "machine": cpu_name(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "bf16_hardware": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                      "peaks_tflop_s": peaks, "rows": rows}))


if __name__ == "__main__":
    main()
