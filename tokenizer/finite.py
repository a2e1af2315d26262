"""Non-finite values are an error that names the component that produced them, never an output.

NaN survives ``clamp`` and turns into black or noise pixels on conversion, so a model with corrupt
(NaN or inf) weights would otherwise "work" and return wrong images without a word.
"""

from __future__ import annotations

import torch


class NonFiniteError(ValueError):
    """A component produced NaN or inf."""


def require_finite(x: torch.Tensor, component: str) -> torch.Tensor:
    """``x`` unchanged, or a ``NonFiniteError`` naming ``component`` (one host sync)."""
    if x.is_meta:  # shape-only runs (FLOP counting) hold no values
        return x
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"the {component} produced {bad} non-finite value(s) (NaN or inf): its weights or "
                             "inputs are corrupt or out of range; reload the model or check the input")
    return x
