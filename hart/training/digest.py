"""Content digests of weights: a later training stage checks that what it started from is unchanged.

A staged recipe (tokenizer, then transformer; or photo-f8's three tokenizer stages) resumes a later
stage from its own checkpoint. If the earlier stage was retrained meanwhile, that checkpoint was
built on weights that no longer exist; the digest stored at the start of the stage detects it.
"""

from __future__ import annotations

import hashlib

import torch


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes of a state dict (hex, 16 chars)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
