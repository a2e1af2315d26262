#!/usr/bin/env python
"""Generate images from a prompt: same flags as ``hart generate`` (run with --help)."""

import sys

from hart.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
