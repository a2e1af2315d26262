"""Per-image seeds: a fixed function of integer keys, the same in every process and on every machine.

``derive_seed(seed, i)`` seeds the generator of prompt i of a ``HARTPipeline`` call and
``derive_seed(line_seed, j)`` image j of a prompt-file line (``hart.batch_generate``). The keys are
hashed (BLAKE2b) rather than added, so that runs with seeds 0 and 1 do not share noise: with
``seed + i``, prompt 1 of seed 0 would draw exactly what prompt 0 of seed 1 draws.
"""

from __future__ import annotations

import hashlib

import torch

SEED_BITS = 63  # torch.Generator.manual_seed takes any non-negative 64-bit integer; 63 stays signed-safe


def derive_seed(*keys: int) -> int:
    """A seed in [0, 2**63) from integer keys; different keys give unrelated seeds."""
    if not keys or not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
        raise TypeError(f"derive_seed takes one or more integers, got {keys!r}")
    digest = hashlib.blake2b(",".join(map(str, keys)).encode(), digest_size=8, person=b"hart-seed").digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


def prompt_generators(seed: int, count: int) -> list[torch.Generator]:
    """``count`` CPU generators: generator i is seeded with ``derive_seed(seed, i)``."""
    return [torch.Generator().manual_seed(derive_seed(seed, i)) for i in range(count)]
