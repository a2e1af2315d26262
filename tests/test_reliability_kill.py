"""Exact resume after SIGKILL at random moments (checkpoint writes included), both trainers.

Slow (about two minutes): ``.venv/bin/pytest -m slow tests/test_reliability_kill.py``. A real
``hart`` subprocess is killed with SIGKILL a few times at random moments and resumed with
``--resume`` each time; its final weights must equal an uninterrupted run's bit for bit.
"""

import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

TINY = {
    "train-tokenizer": ["--model", "tiny", "--data", "shapes", "--restart-every", "2"],
    "train": ["--preset", "tiny", "--data", "shapes", "--cfg-drop", "0.3"],
}


def command(kind: str, out, steps: int) -> list[str]:
    return [sys.executable, "-m", "hart.cli", kind, *TINY[kind], "--out-dir", str(out), "--steps", str(steps),
            "--batch-size", "4", "--lr", "3e-3", "--warmup-steps", "2", "--log-every", "1", "--ckpt-every", "1",
            "--sample-every", "0"]


def weights(run) -> dict[str, torch.Tensor]:
    files = sorted((run / "final").rglob("model.safetensors"))
    return {f"{f.parent.name}.{k}": v for f in files for k, v in load_file(f).items()}


def logged_steps(run) -> int:
    log = run / "log.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train-tokenizer", "train"])
def test_killed_and_resumed_run_equals_an_uninterrupted_run_bit_for_bit(tmp_path, kind):
    steps, kills = 60, 3
    subprocess.run(command(kind, tmp_path / "full", steps), check=True, capture_output=True, timeout=600)
    rng = random.Random(0)
    run = tmp_path / "killed"
    for _ in range(kills):
        # Kill a little after the run has made progress since its (re)start, whatever the machine's
        # speed: at a random moment within a step, often inside a checkpoint write (one per step).
        start = logged_steps(run)
        proc = subprocess.Popen([*command(kind, run, steps), "--resume"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while logged_steps(run) < start + 4 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
        assert proc.poll() is None, "the run ended before it could be killed; raise steps"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert logged_steps(run) < steps
    subprocess.run([*command(kind, run, steps), "--resume"], check=True, capture_output=True, timeout=600)
    full, killed = weights(tmp_path / "full"), weights(run)
    assert full.keys() == killed.keys() and full
    assert all(torch.equal(full[k], killed[k]) for k in full)
    assert not list(run.glob(".*.tmp"))
    assert not (run / ".lock").exists()
