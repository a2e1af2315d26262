"""The unified sampler of HART (docs/design.md section 6; HART Sec. 3.3, VAR Alg. 2).

``generate`` is a function of (transformer, head, tokenizer, text condition, settings, generator),
built from named steps: ``prefill`` the text once into a KV cache, ``decode_scale`` K times (sample
indices with the CFG ramp, update f_hat, build the next input), ``refine_residual`` (the 8-step
residual diffusion on the final scale) and ``decode_image``. ``use_cache=False`` runs the naive
reference: the full teacher-forced forward at every scale (future inputs zero, invisible under the
block-causal mask). Given a one-step head distilled with DMD (``hart.one_step``) and
``diffusion_steps=1``, ``one_step_residual`` replaces ``refine_residual``.

Randomness: all of it flows through ``generator``. One ``torch.Generator`` is shared by the whole
batch (draws depend on the batch mates). A list of B CPU generators, one per prompt row, makes each
row's image a function of its own generator only (``hart.seeding`` and ``HARTPipeline`` use this):
row b's token draws and residual diffusion noise all come from generator b, drawn on the CPU and
moved, so they do not depend on the batch size, the batch mates or the device.

Classifier-free guidance: the batch holds the prompts then the null (empty) prompts; logits are
mixed as (1 + t_k) l_cond - t_k l_null with t_k = cfg_scale * k / (K - 1) (VAR), and the head's
noise prediction with the final scale's 1 + t_K.

The null prompt is the same for every prompt and every call, so its prefill (its keys and values
in every block, its scale-1 logits and hidden state, its pooled condition) is a ``NullPrefix``
computed once per batch, or once per model when the caller keeps it (``HARTPipeline`` does),
and copied into the null rows of the KV cache; only the B prompt rows are prefilled per call.

Shapes: B prompts, T text tokens, l tokens of one scale, V vocabulary, C latent channels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hart.diffusion import GaussianDiffusion
from hart.diffusion_head import DiffusionHead
from hart.dmd import one_step
from hart.kv_cache import KVCache
from hart.one_step import OneStepSpec
from hart.transformer import HARTTransformer
from tokenizer.config_types import checked_fields
from tokenizer.finite import NonFiniteError, require_finite
from tokenizer.hybrid import HybridTokenizer


@dataclass(frozen=True)
class SamplingSettings:
    cfg_scale: float = 4.5
    top_k: int = 600
    top_p: float = 1.0
    temperature: float = 1.0
    diffusion_steps: int = 8
    clip_residual: float = 5.0  # bound on the head's x0 estimate, in units of the scaled residual

    def __post_init__(self) -> None:
        for name, value in checked_fields(SamplingSettings, dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)  # ints stay ints, floats are finite floats
        if self.cfg_scale < 0:
            raise ValueError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0: no top-k), got {self.top_k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.diffusion_steps < 1:
            raise ValueError(f"diffusion_steps must be >= 1, got {self.diffusion_steps}")
        if self.clip_residual <= 0:
            raise ValueError(f"clip_residual must be > 0, got {self.clip_residual}")


# One generator for the whole batch, one CPU generator per prompt row, or torch's default generator.
Generators = torch.Generator | list[torch.Generator] | None


def check_generators(generator: Generators, batch: int) -> None:
    """Raise a clear error unless ``generator`` is None, one generator or ``batch`` CPU generators."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, (list, tuple)) or not all(isinstance(g, torch.Generator) for g in generator):
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    if len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for {batch} prompts: pass one generator per prompt")
    devices = sorted({str(g.device) for g in generator if g.device.type != "cpu"})
    if devices:
        # Per-row draws are made on the CPU (the diffusion noise always is), then moved.
        raise ValueError(f"per-prompt generators must be CPU generators, got {', '.join(devices)}")


def sample_logits(logits_BlV: torch.Tensor, top_k: int, top_p: float, temperature: float,
                  generator: Generators) -> torch.Tensor:
    """Indices (B, l) drawn from temperature / top-k / top-p filtered logits, without host syncs.

    With a list of B generators, row b's indices come from generator b alone (``draw_per_row``).
    """
    logits = logits_BlV.float() / temperature
    V = logits.shape[-1]
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) > top_p  # keep the smallest set reaching top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if isinstance(generator, (list, tuple)):
        return draw_per_row(logits.softmax(-1), generator)
    probs = logits.softmax(-1).flatten(0, -2)
    return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])


def draw_per_row(probs_BlV: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """Indices (B, l): one draw per token by inverting each token's CDF at a uniform from the row's
    CPU generator. Row b's uniforms depend only on generators[b] and l, and the CDF of a row only on
    that row's probabilities, so a row draws the same indices alone or in any batch.
    """
    B, V = probs_BlV.shape[0], probs_BlV.shape[-1]
    check_generators(generators, B)
    flat = probs_BlV.reshape(B, -1, V)  # (B, l, V) whatever the shape between B and V
    l = flat.shape[1]
    # 1 - U lies in (0, 1]: the target u * total is > 0, so a token of probability 0 is never the
    # first to reach it, and <= total, so the search never runs off the end.
    u = torch.stack([1 - torch.rand(l, generator=g) for g in generators]).to(flat.device, flat.dtype)
    cdf = flat.cumsum(-1)
    # clamp: NaN probabilities (corrupt weights, reported by ``generate``) would search past the end
    idx = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1)).squeeze(-1).clamp_max(V - 1)
    # A parallel cumsum (GPU) may round a flat stretch of the CDF unevenly; never return a filtered token.
    allowed = flat.gather(-1, idx.unsqueeze(-1)).squeeze(-1) > 0
    return torch.where(allowed, idx, flat.argmax(-1)).view(probs_BlV.shape[:-1])


def guide(logits: torch.Tensor, t: float, guided: bool) -> torch.Tensor:
    """(1 + t) cond - t null over the two halves of the batch (or the logits as they are)."""
    if not guided:
        return logits
    cond, null = logits.chunk(2)
    return (1 + t) * cond - t * null


@dataclass(frozen=True)
class NullPrefix:
    """The null prompt run through the transformer once: what its prefill leaves behind.

    Valid text tokens attend only to valid text tokens and carry no position encoding, so these
    tensors do not depend on how far the null prompt is left-padded in a batch.
    """

    k: list[torch.Tensor]  # per block (1, H, T0, hd)
    v: list[torch.Tensor]
    logits: torch.Tensor  # (1, 1, V) scale-1 logits
    h: torch.Tensor  # (1, 1, D) last hidden state at the last text position
    pooled: torch.Tensor  # (1, D)
    mask: torch.Tensor  # (1, T0)

    @classmethod
    @torch.no_grad()
    def compute(cls, ar: HARTTransformer, null_text: tuple[torch.Tensor, torch.Tensor]) -> NullPrefix:
        hidden, mask = null_text
        cfg = ar.config
        cache = KVCache(cfg.depth, 1, cfg.heads, mask.shape[1], cfg.head_dim, hidden.device, hidden.dtype)
        logits, h, pooled = ar.prefill(hidden[:1], mask[:1], cache)
        return cls(cache.k, cache.v, logits, h, pooled, mask[:1])


def prefill_guided(ar: HARTTransformer, hidden_BTd: torch.Tensor, mask_BT: torch.Tensor, null: NullPrefix,
                   cache: KVCache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prefill the B (left-padded) prompts into rows [0, B) of ``cache``; copy the null prefix into
    rows [B, 2B) at the last T0 text positions (``prepare_text`` pads the null rows the same way).

    Returns logits (2B, 1, V), hidden (2B, 1, D) and pooled (2B, D), prompts first.
    """
    B, length, T0 = mask_BT.shape[0], mask_BT.shape[1], null.mask.shape[1]
    logits, h, pooled = ar.prefill(hidden_BTd, mask_BT, cache.rows(0, B))
    for layer in range(len(cache.k)):
        cache.k[layer][B:, :, length - T0:length] = null.k[layer]
        cache.v[layer][B:, :, length - T0:length] = null.v[layer]

    def both(cond: torch.Tensor, nul: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond, nul.expand(B, *nul.shape[1:])])
    return both(logits, null.logits), both(h, null.h), both(pooled, null.pooled)


def refine_residual(ar: HARTTransformer, head: DiffusionHead, diffusion: GaussianDiffusion,
                    h_BlD: torch.Tensor, codes_BlC: torch.Tensor, s: SamplingSettings, t_last: float,
                    guided: bool, generator: Generators) -> torch.Tensor:
    """The residual tokens (B, l, C) of the final scale, sampled by the head in ``steps`` steps.

    With one generator per row, the noise of row b's l tokens comes from generator b alone (drawn
    row by row, then concatenated), so the batch still runs as one chain of head calls.
    """
    z = ar.diffusion_condition(h_BlD, codes_BlC).to(module_dtype(head))  # (B or 2B, l, D)
    z_c, z_u = z.chunk(2) if guided else (z, None)
    B, l, _ = z_c.shape
    C = codes_BlC.shape[-1]
    cfg_scale = 1 + t_last if guided else 1.0

    per_row = isinstance(generator, (list, tuple))

    def draw_noise() -> torch.Tensor:  # (B l, C), row-major: row b's tokens from generator b
        return torch.cat([torch.randn(l, C, generator=g) for g in generator])

    x = diffusion.sample(head, z_c.flatten(0, 1), C, s.diffusion_steps, None if per_row else generator,
                         cfg_scale=cfg_scale, z_null_ND=z_u.flatten(0, 1) if guided else None,
                         clip_x0=s.clip_residual, draw_noise=draw_noise if per_row else None)
    return require_finite(x, "diffusion head").view(B, l, C) / head.config.residual_scale


def one_step_residual(ar: HARTTransformer, head_1step: DiffusionHead, spec: OneStepSpec,
                      h_BlD: torch.Tensor, codes_BlC: torch.Tensor, guided: bool,
                      generator: Generators) -> torch.Tensor:
    """The residual tokens (B, l, C) of the final scale from a one-step head: one call, x0 of noise
    read as x_{spec.generator_t} (``hart.dmd.one_step``).

    h_BlD and codes_BlC hold B rows, or 2B (prompts, then null prompts) when ``guided``; the head
    sees the prompt rows only, since the guidance was baked in at distillation. The noise is drawn
    as ``refine_residual`` draws its first noise: (l, C) per row from that row's CPU generator,
    concatenated, or (B l, C) at once from the single generator, so a one-step image depends on
    the same generator state as the 8-step image of that row.
    """
    rows = h_BlD.shape[0]
    B = rows // 2 if guided else rows
    z = ar.diffusion_condition(h_BlD[:B], codes_BlC[:B]).flatten(0, 1).to(module_dtype(head_1step))  # (B l, D)
    l, C = codes_BlC.shape[1], codes_BlC.shape[2]
    if isinstance(generator, (list, tuple)):
        noise = torch.cat([torch.randn(l, C, generator=g) for g in generator])
    else:
        noise = torch.randn((B * l, C), generator=generator, device="cpu")
    diffusion = GaussianDiffusion(head_1step.config.train_steps)
    x0 = one_step(head_1step, diffusion, noise.to(z.device, z.dtype), z, t_gen=spec.generator_t,
                  clip_x0=spec.clip_x0)
    return require_finite(x0, "one-step diffusion head").view(B, l, C) / head_1step.config.residual_scale


@torch.no_grad()
def generate(ar: HARTTransformer, head: DiffusionHead, tokenizer: HybridTokenizer,
             text: tuple[torch.Tensor, torch.Tensor], null_text: tuple[torch.Tensor, torch.Tensor],
             settings: SamplingSettings, generator: Generators = None,
             use_cache: bool = True, use_residual: bool = True,
             null_prefix: NullPrefix | None = None, head_1step: DiffusionHead | None = None,
             one_step_spec: OneStepSpec | None = None, decode: bool = True) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] for text = (hidden (B, T, d), mask (B, T)); with
    ``decode=False`` the latents (B, C, h, w) the tokenizer would decode.

    ``generator``: one generator for the batch, or a list of B CPU generators, one per row (see the
    module docstring).

    ``null_text`` is the encoded empty prompt, (1, T0, d) and (1, T0), broadcast over the batch, or
    B negative prompts (B, T0, d) and (B, T0), prefilled with the prompts.
    ``null_prefix``: ``NullPrefix.compute(ar, null_text)`` kept by the caller across calls (it must
    come from the same transformer weights and the (1-row) null text); computed here when not given.
    ``head_1step`` and ``one_step_spec`` (both or neither): a one-step head that samples the residual
    when ``settings.diffusion_steps == 1`` (``one_step_residual``); other step counts run ``head``.
    """
    if (head_1step is None) != (one_step_spec is None):
        raise ValueError("pass head_1step and one_step_spec together (a one-step head needs its OneStepSpec)")
    s = settings
    cfg = ar.config
    guided = s.cfg_scale > 0
    hidden, mask = prepare_text(text, null_text if guided else None)
    B = text[0].shape[0]
    check_generators(generator, B)
    K, pn, C = cfg.num_scales, cfg.patch_nums, cfg.latent_channels
    diffusion = GaussianDiffusion(head.config.train_steps)
    rows = hidden.shape[0]
    cache = KVCache(cfg.depth, rows, cfg.heads, hidden.shape[1] + cfg.image_tokens, cfg.head_dim,
                    hidden.device, hidden.dtype) if use_cache else None
    if use_cache:
        if guided and null_text[0].shape[0] == 1:
            null = null_prefix if null_prefix is not None else NullPrefix.compute(ar, null_text)
            logits, h, pooled = prefill_guided(ar, hidden[:B], mask[:B], null, cache)
        else:
            logits, h, pooled = ar.prefill(hidden, mask, cache)
        rope = ar.rope(hidden.device)
    inputs = hidden.new_zeros(rows, cfg.image_tokens - 1, C)  # the naive path's growing input
    # Each network runs in its own dtype (e.g. a bf16 transformer beside an fp32 tokenizer): values
    # are cast where they cross from one to the next.
    f_hat = torch.zeros(B, C, pn[-1], pn[-1], device=hidden.device, dtype=module_dtype(tokenizer))
    first = 0
    finite = torch.ones((), dtype=torch.bool, device=hidden.device)  # checked once, after the loop (no syncs)
    for k, p in enumerate(pn):
        if k > 0:
            x = inputs[:, first - 1:first - 1 + p * p]
            if use_cache:
                logits, h = ar.decode_scale(k, x, pooled, mask, cache, rope)
            else:
                all_logits, all_h = ar(hidden, mask, inputs)
                logits, h = all_logits[:, first:first + p * p], all_h[:, first:first + p * p]
        elif not use_cache:
            all_logits, all_h = ar(hidden, mask, inputs)
            logits, h = all_logits[:, :1], all_h[:, :1]
        t = s.cfg_scale * k / max(K - 1, 1)
        finite &= torch.isfinite(logits).all()
        idx = sample_logits(guide(logits, t, guided), s.top_k, s.top_p, s.temperature, generator)
        codes = tokenizer.quantizer.lookup(idx.view(B, p, p))  # (B, C, p, p)
        f_hat, nxt = tokenizer.quantizer.next_scale_input(k, f_hat, codes)
        if nxt is not None:
            n = pn[k + 1] ** 2
            step_in = nxt.flatten(2).transpose(1, 2)
            inputs[:, first + p * p - 1:first + p * p - 1 + n] = step_in.repeat(rows // B, 1, 1)
        first += p * p
    if not finite.is_meta and not bool(finite):  # meta: FLOP counting, no values
        raise NonFiniteError("the transformer produced non-finite logits (NaN or inf): its weights or the text "
                             "states are corrupt; reload the model")
    if use_residual:
        codes_BlC = codes.flatten(2).transpose(1, 2).repeat(rows // B, 1, 1).to(hidden.dtype)
        if head_1step is not None and s.diffusion_steps == 1:
            residual = one_step_residual(ar, head_1step, one_step_spec, h, codes_BlC, guided, generator)
        else:
            residual = refine_residual(ar, head, diffusion, h, codes_BlC, s, t, guided, generator)
        f_hat = f_hat + residual.transpose(1, 2).reshape(B, C, pn[-1], pn[-1]).to(f_hat.dtype)
    return decode_image(tokenizer, f_hat) if decode else f_hat


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of a network's (first) parameters: what its inputs are cast to."""
    return next(module.parameters()).dtype


def prepare_text(text, null_text):
    """Stack prompts and (broadcast) null prompts, left-padding both to one length."""
    hidden, mask = text
    if null_text is None:
        return hidden, mask
    nh, nm = null_text
    B, T = mask.shape
    T0 = nm.shape[1]
    Tm = max(T, T0)
    hidden = torch.cat([pad_left(hidden, Tm), pad_left(nh, Tm).expand(B, -1, -1)])
    mask = torch.cat([pad_left(mask, Tm), pad_left(nm, Tm).expand(B, -1)])
    return hidden, mask


def pad_left(x: torch.Tensor, length: int) -> torch.Tensor:
    """Pad dim 1 of x on the left with zeros (False for masks) up to ``length``."""
    missing = length - x.shape[1]
    if missing <= 0:
        return x
    pad = x.new_zeros((x.shape[0], missing, *x.shape[2:]))
    return torch.cat([pad, x], dim=1)


def decode_image(tokenizer: HybridTokenizer, latent: torch.Tensor) -> torch.Tensor:
    """Decode a latent (B, C, h, h) to images (B, 3, H, W) in [-1, 1]."""
    return require_finite(tokenizer.decode_latent(latent), "tokenizer decoder").clamp(-1.0, 1.0)
