"""1 vs 2 processes on one machine: training steps/s of both trainers and sharded generation images/s.

Each row is one ``accelerate launch`` (``--multi_gpu`` with ACCELERATE_USE_CPU=1 on a CPU machine),
run one after the other on the same machine: 1 process with all the cores, or 2 processes with an
equal share each (OMP_NUM_THREADS). Training rows run the shipped recipes' models (tokenizer
cpu-f8-64; cpu-64 transformer + head on hart-shapes-64's tokenizer) at the same global batch, so
the two rows train the same model; steps/s counts from the first step (start-up and model
building excluded, the first step's warm-up included). Generation rows draw the same prompt file
with hart-shapes-64 (images/s as ``hart generate --prompts`` reports it, model loading excluded).

    python benchmarks/data_parallel.py [--steps 10] [--global-batch 16] [--prompts 64]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")
SHAPES_TOKENIZER = ROOT / "hart" / "pretrained" / "hart-shapes-64" / "tokenizer"


def launch(processes: int, args: list[str], threads: int) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(ACCELERATE), "launch", "--num_processes", str(processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    if processes > 1:
        cmd.append("--multi_gpu")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([*cmd, "-m", "hart.cli", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args[:1])} with {processes} process(es) failed:\n{result.stderr[-2000:]}")
    return result.stdout + result.stderr


def train_rate(kind: str, processes: int, threads: int, steps: int, global_batch: int, out: Path) -> dict:
    batch = global_batch // processes
    common = ["--out-dir", str(out), "--steps", str(steps), "--batch-size", str(batch), "--log-every", "1",
              "--sample-every", "0", "--ckpt-every", "0", "--warmup-steps", "1"]
    if kind == "tokenizer":
        args = ["train-tokenizer", "--model", "cpu-f8-64", "--data", "shapes", *common]
    else:
        args = ["train", "--preset", "cpu-64", "--data", "shapes", "--tokenizer", str(SHAPES_TOKENIZER), *common]
    launch(processes, args, threads)
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {"images_s": last["img_s"], "steps_s": last["img_s"] / global_batch}


def generate_rate(processes: int, threads: int, prompts: Path, out: Path) -> dict:
    text = launch(processes, ["generate", "--prompts", str(prompts), "--out-dir", str(out), "--model",
                              "hart-shapes-64", "--batch-size", "8"], threads)
    match = re.search(r"([0-9.]+) images/s", text)
    if not match:
        raise RuntimeError(f"no images/s in the output of hart generate:\n{text[-2000:]}")
    return {"images_s": float(match.group(1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps per row (default: %(default)s)")
    parser.add_argument("--global-batch", type=int, default=16, help="images per step over all processes")
    parser.add_argument("--prompts", type=int, default=64, help="prompts of the generation rows")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores to share out (default: all)")
    args = parser.parse_args()
    from hart.cli import DEMO_PROMPTS

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompt_file = tmp / "prompts.txt"
        shapes = DEMO_PROMPTS["hart-shapes-64"]
        prompt_file.write_text("".join(shapes[i % len(shapes)] + "\n" for i in range(args.prompts)))
        for what in ("tokenizer", "hart", "generate"):
            for processes in (1, 2):
                threads = max(1, args.cores // processes)
                out = tmp / f"{what}-{processes}"
                rate = (generate_rate(processes, threads, prompt_file, out) if what == "generate" else
                        train_rate(what, processes, threads, args.steps, args.global_batch, out))
                rows.append({"what": what, "processes": processes, "threads_each": threads, **rate})
                print(f"{what} {processes}: {rate}", file=sys.stderr)
    print(f"\n{'work':<12} {'processes':>9} {'threads':>8} {'steps/s':>8} {'images/s':>9} {'vs 1 proc':>9}")
    for row in rows:
        base = next(r for r in rows if r["what"] == row["what"] and r["processes"] == 1)
        steps = f"{row['steps_s']:.3f}" if "steps_s" in row else "-"
        print(f"{row['what']:<12} {row['processes']:>9} {row['threads_each']:>8} {steps:>8} "
              f"{row['images_s']:>9.2f} {row['images_s'] / base['images_s']:>8.2f}x")
    print(json.dumps({"benchmark": "data_parallel", "device": "cpu", "cores": args.cores,
                      "global_batch": args.global_batch, "steps": args.steps, "rows": rows}))


if __name__ == "__main__":
    main()
