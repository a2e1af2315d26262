"""Exact resume after SIGKILL at random moments (checkpoint writes included), both trainers.

Slow (about two minutes): ``.venv/bin/pytest -m slow tests/test_reliability_kill.py``. A real
``hart`` subprocess is killed with SIGKILL a few times at random moments and resumed with
``--resume`` each time; its final weights must equal an uninterrupted run's bit for bit.
"""

import random
import signal
import subprocess
import sys

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


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["train-tokenizer", "train"])
def test_killed_and_resumed_run_equals_an_uninterrupted_run_bit_for_bit(tmp_path, kind):
    steps = 40
    subprocess.run(command(kind, tmp_path / "full", steps), check=True, capture_output=True, timeout=600)
    rng = random.Random(0)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen([*command(kind, tmp_path / "killed", steps), "--resume"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(4.0, 9.0))  # start-up takes a few seconds; then steps + writes
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        break
    else:
        subprocess.run([*command(kind, tmp_path / "killed", steps), "--resume"], check=True, timeout=600)
    assert kills >= 2, "the run ended before it could be killed twice; raise steps"
    full, killed = weights(tmp_path / "full"), weights(tmp_path / "killed")
    assert full.keys() == killed.keys() and full
    assert all(torch.equal(full[k], killed[k]) for k in full)
    assert not list((tmp_path / "killed").glob(".*.tmp"))
    assert not (tmp_path / "killed" / ".lock").exists()
