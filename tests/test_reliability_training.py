"""Reliability of training: divergence stops the run cleanly; no checkpoint is ever unpickled."""

import pickle

import pytest
import torch

from hart.train import HARTTrainConfig, HARTTrainer
from hart.training.loop import TrainingDiverged
from hart.training.state import TrainingStateError, load_training_state
from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer


def tok_run(out, **overrides) -> TokenizerTrainConfig:
    settings = dict(out_dir=str(out), data=("shapes",), model="tiny", steps=8, batch_size=2, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=0, ckpt_every=2, restart_every=0)
    settings.update(overrides)
    return TokenizerTrainConfig(**settings)


class NaNFrom:
    """A data stream whose items from ``first`` on are NaN images (a diverging batch, on demand)."""

    def __init__(self, data, first: int) -> None:
        self.data, self.first = data, first

    def __getitem__(self, i):
        return self.data[i] * float("nan") if i >= self.first else self.data[i]


def test_tokenizer_divergence_stops_keeps_the_good_checkpoint_and_writes_nothing_non_finite(tmp_path):
    trainer = TokenizerTrainer(tok_run(tmp_path, max_skipped_steps=1))
    trainer.data = NaNFrom(trainer.data, first=3 * 2)  # batch 2: step 4 (index 3) is the first bad step
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at step 5 .*2 step\(s\) in a row") as err:
        trainer.run()
    assert "checkpoint.safetensors" in str(err.value) and "is kept" in str(err.value)
    state = load_training_state(tmp_path / "checkpoint.safetensors")
    assert state["step"] == 4  # step 4 was skipped (weights untouched) and checkpointed; step 5 stopped the run
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "final").exists()


def test_hart_divergence_is_an_error_naming_the_step(tmp_path):
    cfg = HARTTrainConfig(out_dir=str(tmp_path), preset="tiny", steps=6, batch_size=2, lr=1e9, warmup_steps=1,
                          grad_clip=0.0, sample_every=0, ckpt_every=0, max_skipped_steps=0)
    with pytest.raises(TrainingDiverged, match=r"step \d"):
        HARTTrainer(cfg).run()
    assert not (tmp_path / "final").exists()


class Exploit:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['HART_PWNED'], 'w').write('ran')",))


def test_a_crafted_pickle_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("HART_PWNED", str(marker))
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"step": Exploit()}))
    with pytest.raises(TrainingStateError, match="pickle"):
        TokenizerTrainer(tok_run(run), resume=True)
    with pytest.raises(TrainingStateError, match="pickle"):
        TokenizerTrainer(tok_run(tmp_path / "b", init_from=str(run / "checkpoint.pt")))
    with pytest.raises(TrainingStateError, match="pickle"):
        HARTTrainer(HARTTrainConfig(out_dir=str(run), preset="tiny", batch_size=2), resume=True)
    (run / "checkpoint.safetensors").write_bytes(pickle.dumps({"step": Exploit()}))
    with pytest.raises(TrainingStateError, match="corrupt"):
        TokenizerTrainer(tok_run(run), resume=True)
    assert not marker.exists()
