"""Latency, throughput and peak memory of HART's sampler and of the diffusion baselines.

Each measurement runs in a fresh process (``spawn``) so that its peak memory is its own: peak RSS
on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU. A measurement builds the model with
random weights (text encoders excluded, random text states of each model's length), runs one
warm-up call, then times ``repeats`` calls with a device synchronisation around each and reports
the median. Baselines may be timed over fewer denoising steps than they use (``timed_steps``):
every step costs the same, so the full latency is extrapolated as
``(t_timed - t_decode) * steps / timed_steps + t_decode`` with the VAE decode timed on its own;
the output says when it was.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.baselines import BASELINES, VAE_SCALE, build_denoiser, build_scheduler, build_vae, sample
from benchmarks.flops import HART_TEXT_TOKENS, hart_text

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PEAK_SIZE = 4096  # square matmul used to measure the device's peak


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# (M, K, N) of the peak sweep: squares, and the linear layers of HART-0.7B (D 1536, MLP 6144) at
# the token counts of its largest 256 px scales with CFG (2 x 256 rows) and of a batch of 8.
PEAK_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (PEAK_SIZE, PEAK_SIZE, PEAK_SIZE),
               (512, 1536, 4608), (512, 1536, 6144), (512, 6144, 1536),
               (4096, 1536, 6144), (4096, 6144, 1536))


def matmul_rate(m: int, k: int, n: int, device: str, dtype: str, repeats: int = 5) -> float:
    """FLOP/s of one (m, k) @ (k, n) matmul, median of ``repeats`` after a warm-up."""
    dev = torch.device(device)
    a = torch.randn(m, k, device=dev, dtype=DTYPES[dtype])
    b = torch.randn(k, n, device=dev, dtype=DTYPES[dtype])
    return 2 * m * k * n / timed(lambda: a @ b, dev, repeats)


def matmul_sweep(device: str, dtype: str, repeats: int = 5, shapes=PEAK_SHAPES) -> dict[str, float]:
    """FLOP/s of each matmul shape 'MxKxN' of ``shapes``."""
    return {"x".join(map(str, s)): matmul_rate(*s, device=device, dtype=dtype, repeats=repeats) for s in shapes}


def matmul_peak(device: str, dtype: str, repeats: int = 5, shapes=PEAK_SHAPES) -> float:
    """The device's practical limit: the best FLOP/s over a sweep of matmul shapes.

    One big square matmul is not enough: on a small shared-cache CPU a 4096^3 product runs slower
    than the transformer's own (512 x 1536) @ (1536 x 6144) products.
    """
    return max(matmul_sweep(device, dtype, repeats, shapes).values())


def _hart(resolution: int, batch: int, device: torch.device, dtype: torch.dtype, repeats: int,
          preset: str | None = None, keep_null_prefix: bool = True, text_tokens: int = HART_TEXT_TOKENS) -> dict:
    """HART-0.7B at ``resolution`` (or the components of pipeline ``preset``), text encoder excluded.

    ``keep_null_prefix``: the null prompt's prefill is computed once before timing, as
    ``HARTPipeline`` keeps it across calls (False: once per call, inside the timing).
    ``text_tokens``: length of the prompts and of the null prompt (HART pads to the longest prompt).
    """
    from hart.config import HEAD_PRESETS, TRANSFORMER_PRESETS
    from hart.diffusion_head import DiffusionHead
    from hart.pipeline import PIPELINE_PRESETS
    from hart.sampler import NullPrefix, SamplingSettings, generate
    from hart.transformer import HARTTransformer
    from tokenizer.config import PRESETS
    from tokenizer.hybrid import HybridTokenizer

    p = PIPELINE_PRESETS[preset or f"hart-0.7b-{resolution}"]
    torch.manual_seed(0)
    with torch.device(device):
        ar = HARTTransformer(TRANSFORMER_PRESETS[p.transformer]).eval().to(dtype)
        head = DiffusionHead(HEAD_PRESETS[p.head]).eval().to(dtype)
        tok = HybridTokenizer(PRESETS[p.tokenizer]).eval().to(dtype)
    text, null = hart_text(batch, ar.config.text_dim, device, dtype, text_tokens)
    g = torch.Generator(device=device).manual_seed(0)
    prefix = NullPrefix.compute(ar, null) if keep_null_prefix else None
    seconds = timed(lambda: generate(ar, head, tok, text, null, SamplingSettings(), g, null_prefix=prefix),
                    device, repeats)
    return {"seconds": seconds, "extrapolated_from_steps": None}


def _baseline(name: str, resolution: int, batch: int, device: torch.device, dtype: torch.dtype, repeats: int,
              timed_steps: int | None) -> dict:
    b = BASELINES[name]
    torch.manual_seed(0)
    with torch.device(device):
        model, vae = build_denoiser(b, resolution).to(dtype), build_vae(b).to(dtype)
    scheduler = build_scheduler(b)
    g = torch.Generator().manual_seed(0)
    steps = timed_steps or b.steps
    with torch.no_grad():
        seconds = timed(lambda: sample(b, model, vae, scheduler, batch, resolution, g, steps=steps), device, repeats)
        if steps != b.steps:
            latent = torch.randn(batch, b.latent_channels, resolution // VAE_SCALE, resolution // VAE_SCALE,
                                 device=device, dtype=dtype)
            decode = timed(lambda: vae.decode(latent, return_dict=False), device, repeats)
            seconds = (seconds - decode) * b.steps / steps + decode
    return {"seconds": seconds, "extrapolated_from_steps": steps if steps != b.steps else None}


def _child(kind: str, kwargs: dict) -> dict:
    device = torch.device(kwargs.pop("device"))
    dtype = DTYPES[kwargs.pop("dtype")]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if kind == "hart":
        out = _hart(device=device, dtype=dtype, **kwargs)
    else:
        out = _baseline(kind, device=device, dtype=dtype, **kwargs)
    if device.type == "cuda":
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    else:
        out["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def measure(kind: str, **kwargs) -> dict:
    """Time ``kind`` ('hart' or a baseline name) in a fresh process; see the module docstring."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_child, (kind, kwargs))
