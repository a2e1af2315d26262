"""Contracts of the shared training core: pickle-free state files, resume checks, layouts, digests."""

import json

import pytest
import torch

from hart.train import HARTTrainConfig, HARTTrainer
from hart.training.digest import state_digest
from hart.training.distributed import Layout, check_resume_layout
from hart.training.loop import check_resume_config, sample_generator
from hart.training.state import TrainingStateError, load_training_state, save_training_state
from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer


def tok_run(out, **overrides) -> TokenizerTrainConfig:
    settings = dict(out_dir=str(out), data=("shapes",), model="tiny", steps=4, batch_size=2, lr=3e-3,
                    warmup_steps=1, log_every=1, sample_every=0, ckpt_every=0, restart_every=2)
    settings.update(overrides)
    return TokenizerTrainConfig(**settings)


def test_state_round_trip_keeps_structure_types_and_tensors(tmp_path):
    opt = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    opt.zero_grad()
    torch.nn.Linear(3, 2)(torch.ones(1, 3)).sum().backward()
    state = {"step": 7, "opt": opt.state_dict(), "nested": {3: (1.5, "a", None, True), "t": torch.arange(4)},
             "history": [{"loss": 0.5}], "empty": torch.zeros(0), "nan": float("nan")}
    save_training_state(tmp_path / "s.safetensors", state)
    back = load_training_state(tmp_path / "s.safetensors")
    assert back["step"] == 7 and back["history"] == [{"loss": 0.5}]
    assert back["nested"][3] == (1.5, "a", None, True) and torch.equal(back["nested"]["t"], torch.arange(4))
    assert back["opt"]["param_groups"] == opt.state_dict()["param_groups"]
    assert back["empty"].shape == (0,) and back["nan"] != back["nan"]


def test_state_refuses_unsupported_objects_and_foreign_or_corrupt_files(tmp_path):
    with pytest.raises(TypeError, match="cannot hold"):
        save_training_state(tmp_path / "x.safetensors", {"bad": object()})
    assert not (tmp_path / "x.safetensors").exists()
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(TrainingStateError, match="not a hart training state"):
        load_training_state(tmp_path / "model.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(TrainingStateError, match="corrupt or truncated"):
        load_training_state(tmp_path / "bad.safetensors")


def test_resume_config_allows_length_and_logging_but_not_what_is_trained(tmp_path):
    stored = {"steps": 10, "log_every": 5, "lr": 1e-3, "betas": [0.9, 0.95], "data": ["shapes"]}
    check_resume_config(stored, {**stored, "steps": 20, "log_every": 1, "betas": (0.9, 0.95),
                                 "data": ("shapes",)}, tmp_path)
    with pytest.raises(RuntimeError, match=r"lr: 0.001 -> 0.01"):
        check_resume_config(stored, {**stored, "lr": 1e-2}, tmp_path)


def test_resume_layout_keeps_the_global_batch_or_says_how():
    before = Layout(2, 3, 1).to_dict()
    assert check_resume_layout(before, Layout(2, 3, 1), "ckpt") is None
    assert "same global batch" in check_resume_layout(before, Layout(1, 3, 2), "ckpt")
    with pytest.raises(RuntimeError, match="--grad-accum 2"):
        check_resume_layout(before, Layout(1, 3, 1), "ckpt")


def test_tokenizer_resume_refuses_other_settings_and_accepts_more_steps(tmp_path):
    TokenizerTrainer(tok_run(tmp_path)).run(until=2)
    with pytest.raises(RuntimeError, match="lr"):
        TokenizerTrainer(tok_run(tmp_path, lr=1e-2), resume=True)
    with pytest.raises(RuntimeError, match="global batch"):
        TokenizerTrainer(tok_run(tmp_path, batch_size=4), resume=True)
    trainer = TokenizerTrainer(tok_run(tmp_path, steps=6), resume=True)
    assert trainer.step == 2 and trainer.run() is not None


def test_log_is_not_duplicated_after_a_resume(tmp_path):
    TokenizerTrainer(tok_run(tmp_path)).run(until=2)
    log = tmp_path / "log.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": 3, "loss": 9.9}) + "\n")  # logged, then killed
    TokenizerTrainer(tok_run(tmp_path), resume=True).run()
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads(log.read_text().splitlines()[2])["loss"] != 9.9


def test_stage_resume_refuses_a_retrained_init_from(tmp_path):
    first = TokenizerTrainer(tok_run(tmp_path / "a", steps=2)).run()
    second = tok_run(tmp_path / "b", init_from=str(first))
    TokenizerTrainer(second).run(until=2)
    TokenizerTrainer(tok_run(tmp_path / "a", steps=2, seed=1), overwrite=True).run()  # the earlier stage is redone
    with pytest.raises(RuntimeError, match="retrained since"):
        TokenizerTrainer(second, resume=True)


def test_hart_resume_refuses_another_tokenizer(tmp_path):
    tok_dir = tmp_path / "tok"
    TokenizerTrainer(tok_run(tok_dir, steps=1)).run()
    cfg = HARTTrainConfig(out_dir=str(tmp_path / "run"), preset="tiny", tokenizer=str(tok_dir / "final"), steps=3,
                          batch_size=2, warmup_steps=1, sample_every=0, ckpt_every=0)
    HARTTrainer(cfg).run(until=1)
    TokenizerTrainer(tok_run(tok_dir, steps=1, seed=5), overwrite=True).run()
    with pytest.raises(RuntimeError, match="another tokenizer"):
        HARTTrainer(cfg, resume=True)


def test_sample_generator_depends_on_seed_and_index_only():
    draw = [torch.rand(3, generator=sample_generator(s, i)) for s, i in ((0, 5), (0, 5), (0, 6), (1, 5))]
    assert torch.equal(draw[0], draw[1])
    assert not torch.equal(draw[0], draw[2]) and not torch.equal(draw[0], draw[3])


def test_state_digest_sees_values_names_and_dtypes():
    a = {"w": torch.ones(2, 2)}
    assert state_digest(a) == state_digest({"w": torch.ones(2, 2)})
    assert state_digest(a) != state_digest({"w": torch.ones(2, 2).double()})
    assert state_digest(a) != state_digest({"v": torch.ones(2, 2)})
    assert state_digest(a) != state_digest({"w": torch.ones(2, 2) + 1e-7})


def test_ema_warmup_forgets_the_starting_weights():
    from torch import nn

    from hart.training.schedule import ema_decay_at, ema_update_

    assert ema_decay_at(0, 0.998, warmup=False) == 0.998
    assert ema_decay_at(0, 0.998, warmup=True) == pytest.approx(0.1)
    assert ema_decay_at(10_000, 0.998, warmup=True) == 0.998
    start, trained = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    for warmup, most in ((False, 0.07), (True, 1e-6)):
        ema = nn.Linear(2, 2, bias=False)
        ema.load_state_dict(start.state_dict())
        for step in range(1300):
            ema_update_(ema, trained, ema_decay_at(step, 0.998, warmup))
        left = ((ema.weight - trained.weight) / (start.weight - trained.weight)).detach()  # share of the start kept
        assert float(left.max()) <= most * 1.1
        if not warmup:
            assert float(left.min()) >= 0.07  # 0.998 ** 1300 = 0.074 of the random start survives


def test_resume_of_a_run_recorded_before_ema_warmup_needs_it_off(tmp_path):
    stored = {"lr": 1e-3, "ema_decay": 0.998}  # recorded before the key existed: trained without warm-up
    check_resume_config(stored, {**stored, "ema_warmup": False}, tmp_path)
    with pytest.raises(RuntimeError, match="ema_warmup"):
        check_resume_config(stored, {**stored, "ema_warmup": True}, tmp_path)
