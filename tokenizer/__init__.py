"""Hybrid tokenizer of HART: multi-scale discrete tokens plus a continuous residual."""

from tokenizer.config import PRESETS, TokenizerConfig, get_preset
from tokenizer.hybrid import HybridCodes, HybridTokenizer, shipped_names
from tokenizer.quantizer import MultiScaleQuantizer

__all__ = [
    "PRESETS", "HybridCodes", "HybridTokenizer", "MultiScaleQuantizer", "TokenizerConfig",
    "get_preset", "shipped_names",
]
