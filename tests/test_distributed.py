"""Data-parallel training with real processes: ``accelerate launch --multi_gpu`` on the CPU (gloo).

Both trainers, tiny presets, codebook restarts every step: (a) every process holds the same weights
after every step; (b) 2 processes of batch b train the same model as 1 process of batch 2 b (the
same items, the same per-sample randomness, gradients averaged by DDP). About a minute in all.
The launch-mistake and resume-with-another-process-count tests are ``slow``:
``.venv/bin/pytest -m slow tests/test_distributed.py``.
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
TOLERANCE = 1e-4  # |w_2proc - w_1proc| after 3 Adam steps of almost all weights: float order of the all-reduce
LR, STEPS = 3e-3, 3  # of tests/distributed_script.py


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
    diff = torch.cat([(two[k].float() - one[k].float()).abs().flatten() for k in one])
    # The same trajectory up to float order: almost every weight agrees to 1e-4. Adam moves a weight
    # by about lr per step whatever its gradient's size, so a coordinate whose gradient is ~0 (the
    # zero-initialised adaLN and timestep layers of the head at the start) can take steps of opposite
    # sign from float noise alone: up to 2 lr x steps apart, in a few weights only.
    assert diff.median().item() <= 1e-6, diff.median().item()
    assert (diff > TOLERANCE).float().mean().item() <= 0.005
    assert diff.max().item() <= 2 * LR * STEPS
    # Logged losses are the mean over processes: equal to the one-process batch's loss.
    log_two = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    log_one = [json.loads(x) for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    for key in ("rec",) if trainer == "tokenizer" else ("ce", "diffusion"):
        assert [r[key] for r in log_two] == pytest.approx([r[key] for r in log_one], rel=1e-3)


@pytest.mark.slow
def test_a_launch_without_multi_gpu_says_that_it_started_one_process(tmp_path):
    result = launch(2, "tokenizer", str(tmp_path), "--batch-size", "2", "--steps", "1", multi_gpu=False)
    assert "started one" in result.stderr and "--multi_gpu" in result.stderr
    assert json.loads((tmp_path / "digests.rank0.json").read_text())["processes"] == 1


@pytest.mark.slow
def test_resume_with_another_process_count_keeps_the_global_batch_by_accumulation(tmp_path):
    """2 processes x 3 for 2 steps, then 1 process x 3 x grad_accum 2: as if uninterrupted."""
    launch(2, "tokenizer", str(tmp_path / "full"), "--batch-size", "3")
    launch(2, "tokenizer", str(tmp_path / "split"), "--batch-size", "3", "--steps", "2")
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), "tokenizer", str(tmp_path / "split"), "--batch-size", "3", "--resume"],
        capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--grad-accum 2" in refused.stderr
    result = launch(1, "tokenizer", str(tmp_path / "split"), "--batch-size", "3", "--grad-accum", "2", "--resume")
    assert "same global batch" in result.stderr
    full, split = final_weights(tmp_path / "full", "tokenizer"), final_weights(tmp_path / "split", "tokenizer")
    worst = max((full[k] - split[k]).abs().max().item() for k in full)
    assert worst <= TOLERANCE, worst
