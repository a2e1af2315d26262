#!/usr/bin/env python
"""Train a hybrid tokenizer: same flags as ``hart train-tokenizer`` (run with --help).

Single process: ``python scripts/train_tokenizer.py --config configs/tokenizer-photo-f8.yaml``.
Many GPUs or nodes: ``accelerate launch scripts/train_tokenizer.py --config ...``.
"""

import sys

from hart.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-tokenizer", *sys.argv[1:]]))
