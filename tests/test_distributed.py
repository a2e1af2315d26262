"""Data-parallel training with real processes: ``accelerate launch --multi_gpu`` on the CPU (gloo).

Both trainers, tiny presets, codebook restarts every step: (a) every process holds the same weights
after every step; (b) 2 processes of batch b train the same model as 1 process of batch 2 b (the
same items, the same per-sample randomness, gradients averaged by DDP). About a minute in all.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("distributed_script.py")
ACCELERATE = Path(sys.executable).with_name("accelerate")
TOLERANCE = 1e-4  # max |w_2proc - w_1proc| after 3 Adam steps: float order of the gradient all-reduce


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(processes: int, *args: str, multi_gpu: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(ACCELERATE), "launch", "--num_processes", str(processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    if multi_gpu and processes > 1:
        cmd.append("--multi_gpu")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*cmd, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def final_weights(run: Path, trainer: str) -> dict[str, torch.Tensor]:
    if trainer == "tokenizer":
        return load_file(run / "final" / "model.safetensors")
    return {f"{part}.{k}": v for part in ("transformer", "diffusion_head")
            for k, v in load_file(run / "final" / part / "model.safetensors").items()}


@pytest.mark.parametrize("trainer", ["tokenizer", "hart"])
def test_two_processes_hold_equal_weights_and_match_one_process_of_twice_the_batch(tmp_path, trainer):
    launch(2, trainer, str(tmp_path / "two"), "--batch-size", "3")
    launch(1, trainer, str(tmp_path / "one"), "--batch-size", "6")
    ranks = [json.loads((tmp_path / "two" / f"digests.rank{r}.json").read_text()) for r in range(2)]
    assert [r["processes"] for r in ranks] == [2, 2]
    assert ranks[0]["digests"] == ranks[1]["digests"]  # identical weights after every step
    two, one = final_weights(tmp_path / "two", trainer), final_weights(tmp_path / "one", trainer)
    assert two.keys() == one.keys()
    worst = max((two[k].float() - one[k].float()).abs().max().item() for k in one)
    assert worst <= TOLERANCE, worst
    # Logged losses are the mean over processes: equal to the one-process batch's loss.
    log_two = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    log_one = [json.loads(x) for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    key = "rec" if trainer == "tokenizer" else "ce"
    assert [r[key] for r in log_two] == pytest.approx([r[key] for r in log_one], rel=1e-3)
