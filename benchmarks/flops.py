"""FLOPs per image of HART's sampler and of the diffusion baselines, counted on the meta device.

``torch.utils.flop_counter`` counts the matmul-like ops that actually run (2 FLOPs per
multiply-add): HART's whole ``generate`` is executed on meta tensors (text prefill into the KV cache,
the K scales with CFG, the 8-step residual head, the tokenizer decode), the baselines' denoiser
once per step at the CFG batch plus one VAE decode. Stages:

- ``linear``: the transformer's / denoiser's matmuls (``addmm``, ``mm``; patchify convs of the DiTs),
- ``attention``: score and value products (``bmm`` / SDPA) of the transformer or denoiser,
- ``head``: HART's residual diffusion MLP (all 8 steps, with CFG),
- ``decode``: the tokenizer decoder (with the quantizer's phi convs) or the VAE decoder.

Two conventions are reported: ``all`` (every stage) and ``linear`` (the transformer's linear
layers only, with CFG), the one that HART's published MACs appear to follow.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.baselines import VAE_SCALE, Baseline, build_denoiser, build_vae, condition
from hart.pipeline import HARTPipeline
from hart.sampler import NullPrefix, SamplingSettings, generate

LINEAR_OPS = ("aten.addmm", "aten.mm")
CONV_OPS = ("aten.convolution",)
HART_TEXT_TOKENS = 300  # Qwen2 context at its maximum length: the same order as the baselines' T5


def _by_op(counts: dict) -> dict[str, int]:
    return {str(op): int(n) for op, n in counts.items()}


def _split(ops: dict[str, int]) -> tuple[int, int, int]:
    """(linear, conv, other) FLOPs of an op -> FLOPs dict."""
    linear = sum(n for op, n in ops.items() if op in LINEAR_OPS)
    conv = sum(n for op, n in ops.items() if op in CONV_OPS)
    return linear, conv, sum(ops.values()) - linear - conv


def hart_text(batch: int, width: int, device, dtype: torch.dtype, tokens: int = HART_TEXT_TOKENS):
    """Random text states and their all-valid masks: (prompts (B, T, d), (B, T)), (null (1, T, d), (1, T))."""
    def one(rows: int):
        return (torch.randn(rows, tokens, width, device=device, dtype=dtype),
                torch.ones(rows, tokens, dtype=torch.bool, device=device))
    return one(batch), one(1)


def hart_flops(preset: str, batch: int = 1, text_tokens: int = HART_TEXT_TOKENS,
               settings: SamplingSettings | None = None, keep_null_prefix: bool = False) -> dict[str, int]:
    """FLOPs of ``batch`` images from the HART preset, by stage (text encoder excluded).

    By default the null prompt's prefill is counted in every call; ``keep_null_prefix`` counts a
    call with it kept from an earlier one (as ``HARTPipeline`` does).
    """
    pipe = HARTPipeline.from_preset(preset, meta=True)
    text, null = hart_text(batch, pipe.transformer.config.text_dim, "meta", torch.float32, text_tokens)
    prefix = NullPrefix.compute(pipe.transformer, null) if keep_null_prefix else None
    with FlopCounterMode(display=False, depth=1) as counter:
        generate(pipe.transformer, pipe.head, pipe.tokenizer, text, null, settings or SamplingSettings(), None,
                 null_prefix=prefix)
    counts = counter.get_flop_counts()
    total = _by_op(counts["Global"])
    head = sum(_by_op(counts.get("DiffusionHead", {})).values())
    decoder_other = _split(_by_op(counts.get("Decoder", {})))[2]  # the decoder's mid-block attention
    linear, conv, other = _split(total)
    stages = {"linear": linear - head, "attention": other - decoder_other, "head": head,
              "decode": conv + decoder_other}
    return {**stages, "all": sum(stages.values())}


def baseline_flops(b: Baseline, resolution: int, batch: int = 1) -> dict[str, int]:
    """FLOPs of ``batch`` images from a diffusion baseline: steps x guided denoiser + VAE decode."""
    with torch.device("meta"):
        model, vae = build_denoiser(b, resolution), build_vae(b)
    latent = resolution // VAE_SCALE
    x = torch.zeros(2 * batch, b.latent_channels, latent, latent, device="meta")
    cond = condition(b, batch, "meta", torch.float32)
    with FlopCounterMode(display=False) as counter:
        model(x, timestep=torch.zeros(2 * batch, device="meta"), return_dict=False, **cond)
    linear, conv, other = _split(_by_op(counter.get_flop_counts()["Global"]))
    with FlopCounterMode(display=False) as counter:
        vae.decode(torch.zeros(batch, b.latent_channels, latent, latent, device="meta"), return_dict=False)
    decode = sum(_by_op(counter.get_flop_counts()["Global"]).values())
    stages = {"linear": b.steps * (linear + conv), "attention": b.steps * other, "head": 0, "decode": decode}
    return {**stages, "all": sum(stages.values())}
