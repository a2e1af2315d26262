"""Reliability of run directories: owned by one live run, never silently replaced, no leftovers."""

import json
import os
import subprocess
import sys

import pytest

from hart.cli import main
from hart.training.rundir import LOCK_NAME, RunDirectory, RunDirectoryError
from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer


def tok_run(out, **overrides) -> TokenizerTrainConfig:
    settings = dict(out_dir=str(out), data=("shapes",), model="tiny", steps=2, batch_size=2, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=0, ckpt_every=0, restart_every=0)
    settings.update(overrides)
    return TokenizerTrainConfig(**settings)


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path):
    TokenizerTrainer(tok_run(tmp_path)).run()
    before = (tmp_path / "checkpoint.safetensors").read_bytes()
    with pytest.raises(RunDirectoryError, match="--resume .* --overwrite"):
        TokenizerTrainer(tok_run(tmp_path))
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    TokenizerTrainer(tok_run(tmp_path, steps=3), overwrite=True).run()
    steps = [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the old log was replaced, not appended to


def test_a_live_run_holds_the_directory_and_a_second_run_fails_naming_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid}))
        with pytest.raises(RunDirectoryError, match=f"in use by process {holder.pid}"):
            TokenizerTrainer(tok_run(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    TokenizerTrainer(tok_run(tmp_path)).run()  # the holder is gone: its lock is stale and taken over
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_released_after_a_run_and_after_an_error(tmp_path):
    trainer = TokenizerTrainer(tok_run(tmp_path))
    assert (tmp_path / LOCK_NAME).is_file()
    trainer.data = None  # the loop fails at its first batch
    with pytest.raises(TypeError):
        trainer.run()
    assert not (tmp_path / LOCK_NAME).exists()


def test_temporaries_of_an_interrupted_write_are_removed(tmp_path):
    TokenizerTrainer(tok_run(tmp_path)).run(until=1)
    stale = tmp_path / ".checkpoint.safetensors.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    TokenizerTrainer(tok_run(tmp_path), resume=True).run()
    assert not stale.exists()


def test_cli_refuses_an_existing_run_in_one_line(tmp_path, capsys):
    args = ["train-tokenizer", "--model", "tiny", "--data", "shapes", "--out-dir", str(tmp_path), "--steps", "1",
            "--batch-size", "2", "--sample-every", "0"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0]
    assert main([*args, "--overwrite"]) == 0


def test_run_directory_object_is_reentrant_for_its_own_process(tmp_path):
    first = RunDirectory(tmp_path, resume=False, overwrite=False)
    second = RunDirectory(tmp_path, resume=False, overwrite=False)  # same pid: taken over, no error
    second.release()
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
