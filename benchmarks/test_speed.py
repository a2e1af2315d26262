"""pytest-benchmark timings of HART's sampler and the diffusion baselines, side by side.

    pytest benchmarks/ --benchmark-only                       # tiny + hart-0.7b-256 on the CPU
    HART_BENCH_RESOLUTIONS=256,512 HART_BENCH_DEVICE=cuda HART_BENCH_DTYPE=bf16 pytest benchmarks/ --benchmark-only

Not part of ``make test`` (its testpaths is tests/). Each benchmark builds its model with random
weights (text encoders excluded, random text states), runs one warm-up round and times
``HART_BENCH_ROUNDS`` rounds (default 2) with a device synchronisation at the end of each; the
FLOPs of one call go into ``extra_info`` so the JSON report (``--benchmark-json``) carries
TFLOP/s. HART is timed end to end (all scales, 8 head steps, decode); a baseline is timed for one
guided denoising step (scripts/bench.py extrapolates to the full sampler). Each benchmark also
checks its output: right shape and finite.
"""

from __future__ import annotations

import os

import pytest
import torch

from benchmarks.flops import HART_TEXT_TOKENS, baseline_flops, hart_flops, hart_text
from benchmarks.speed import DTYPES, synchronize
from hart.pipeline import PIPELINE_PRESETS, HARTPipeline
from hart.sampler import NullPrefix, generate

RESOLUTIONS = [int(r) for r in os.environ.get("HART_BENCH_RESOLUTIONS", "256").split(",")]
DEVICE = torch.device(os.environ.get("HART_BENCH_DEVICE", "cpu"))
DTYPE = DTYPES[os.environ.get("HART_BENCH_DTYPE", "fp32")]
ROUNDS = int(os.environ.get("HART_BENCH_ROUNDS", "2"))


def run(benchmark, fn):
    def call():
        out = fn()
        synchronize(DEVICE)
        return out
    return benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=1, iterations=1)


@pytest.mark.parametrize("preset", ["tiny", "cpu-64"] + [f"hart-0.7b-{r}" for r in RESOLUTIONS])
@torch.no_grad()
def test_hart_generate(benchmark, preset):
    pipe = HARTPipeline.from_preset(preset, device=DEVICE)
    ar, head, tok = (m.to(DTYPE) for m in (pipe.transformer, pipe.head, pipe.tokenizer))
    tokens = min(ar.config.max_text_len, HART_TEXT_TOKENS)  # a full text context
    text, null = hart_text(1, ar.config.text_dim, DEVICE, DTYPE, tokens)
    settings = PIPELINE_PRESETS[preset].sampling
    benchmark.extra_info["flops"] = hart_flops(preset, text_tokens=tokens, settings=settings)["all"]
    prefix = NullPrefix.compute(ar, null)  # kept across calls, as HARTPipeline does
    images = run(benchmark, lambda: generate(ar, head, tok, text, null, settings,
                                             torch.Generator(DEVICE).manual_seed(0), null_prefix=prefix))
    size = tok.config.image_size
    assert images.shape == (1, 3, size, size) and torch.isfinite(images).all()


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("name", ["pixart-sigma-0.6b", "sd3-medium-2b"])
@torch.no_grad()
def test_baseline_step(benchmark, name, resolution):
    pytest.importorskip("diffusers")
    from benchmarks.baselines import BASELINES, VAE_SCALE, build_denoiser, condition, denoise_step

    b = BASELINES[name]
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = build_denoiser(b, resolution).to(DTYPE)
    latent = resolution // VAE_SCALE
    x = torch.randn(1, b.latent_channels, latent, latent, device=DEVICE, dtype=DTYPE)
    cond = condition(b, 1, DEVICE, DTYPE)
    t = torch.tensor(500.0, device=DEVICE)
    f = baseline_flops(b, resolution)
    benchmark.extra_info["flops"] = (f["linear"] + f["attention"]) // b.steps
    out = run(benchmark, lambda: denoise_step(b, model, x, t, cond, cfg_scale=4.5))
    assert out.shape == x.shape and torch.isfinite(out).all()
