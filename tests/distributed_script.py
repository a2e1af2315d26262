"""Run by tests/test_distributed.py under ``accelerate launch``: train a tiny model, one step per
``run(until=...)`` call, and write each process's weight digest after every step to
``OUT/digests.rank{R}.json``. Not a test module itself (pytest collects ``test_*.py`` only)."""

import argparse
import json
from pathlib import Path

from hart.training.digest import state_digest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trainer", choices=["tokenizer", "hart"])
    parser.add_argument("out_dir")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    if args.trainer == "tokenizer":
        from tokenizer.train import TokenizerTrainConfig, TokenizerTrainer

        cfg = TokenizerTrainConfig(out_dir=args.out_dir, data=("shapes",), model="tiny", steps=args.steps,
                                   batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-3,
                                   warmup_steps=1, log_every=1, sample_every=0, ckpt_every=0, restart_every=1)
        trainer = TokenizerTrainer(cfg, resume=args.resume)
    else:
        from hart.train import HARTTrainConfig, HARTTrainer

        cfg = HARTTrainConfig(out_dir=args.out_dir, preset="tiny", data="shapes", steps=args.steps,
                              batch_size=args.batch_size, grad_accum=args.grad_accum, lr=3e-3, warmup_steps=1,
                              log_every=1, sample_every=0, ckpt_every=0, cfg_drop=0.3)
        trainer = HARTTrainer(cfg, resume=args.resume)
    digests = []
    while trainer.step < cfg.steps:
        trainer.run(until=trainer.step + 1)
        digests.append(state_digest(trainer.acc.unwrap_model(trainer.model).state_dict()))
    rank = trainer.acc.process_index
    Path(args.out_dir, f"digests.rank{rank}.json").write_text(
        json.dumps({"processes": trainer.acc.num_processes, "digests": digests}))


if __name__ == "__main__":
    main()
