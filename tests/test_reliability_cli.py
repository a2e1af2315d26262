"""Reliability of the command line: Ctrl-C, mixed-up run directories, unusual seeds."""

import signal
import subprocess
import sys
import time

from hart.cli import main
from hart.training.state import load_training_state


def test_ctrl_c_in_training_saves_a_checkpoint_and_exits_130_in_one_line(tmp_path):
    cmd = [sys.executable, "-m", "hart.cli", "train-tokenizer", "--model", "tiny", "--data", "shapes", "--out-dir",
           str(tmp_path), "--steps", "100000", "--batch-size", "2", "--sample-every", "0", "--ckpt-every", "0",
           "--log-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and log.read_text().count("\n") >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if "interrupted" in line or "Traceback" in line]
    assert lines == ["hart train-tokenizer: interrupted"], err[-2000:]
    state = load_training_state(tmp_path / "checkpoint.safetensors")
    assert state["step"] >= 3  # the steps done before Ctrl-C are kept although ckpt_every is 0


def test_resuming_a_tokenizer_run_with_hart_train_names_the_mix_up(tmp_path, capsys):
    tok = ["train-tokenizer", "--model", "tiny", "--data", "shapes", "--out-dir", str(tmp_path), "--steps", "1",
           "--batch-size", "2", "--sample-every", "0"]
    assert main(tok) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--resume", "--batch-size", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a checkpoint of `hart train` (kind 'tokenizer')" in err[0]


def test_seeds_of_any_size_or_sign_are_accepted_and_reproducible(tmp_path):
    from hart.pipeline import HARTPipeline

    pipe = HARTPipeline.from_preset("tiny", seed=0)
    for seed in (2**70, -5, 2**64 - 1):
        a = pipe(["a red circle"], seed=seed, progress=False).images[0].tobytes()
        assert a == pipe(["a red circle"], seed=seed, progress=False).images[0].tobytes()
