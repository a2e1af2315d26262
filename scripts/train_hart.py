#!/usr/bin/env python
"""Train the HART transformer + diffusion head: same flags as ``hart train`` (run with --help).

Many GPUs or nodes: ``accelerate launch scripts/train_hart.py --config ...``.
"""

import sys

from hart.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
