"""The ``hart`` command line: generate, demo, info, serve, train, train-tokenizer, reconstruct.

Library code does the work; this module only parses flags and prints results.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from hart.cli_config import add_dataclass_flags, config_from_args
from hart.cli_help import (
    DISTILL_DIFFUSION_HELP,
    DISTILL_HEAD_HELP,
    TRAIN_DIT_HELP,
    TRAIN_HART_HELP,
    TRAIN_TOKENIZER_HELP,
)

GRID_COLUMNS = 8  # images per row of a generate --grid
# What `hart demo` (make demo) draws with each shipped model: prompts x DEMO_SEEDS images.
DEMO_PROMPTS = {
    "hart-shapes-64": (
        "a large red circle at the center on a white background",
        "a small blue square at the top left on a black background",
        "a large yellow triangle at the bottom right on a white background",
        "a small green circle at the right on a black background",
        "a large purple square at the top on a black background",
        "a small orange triangle at the bottom left on a white background",
    ),
    "hart-emoji-64": ("red apple", "grinning face", "rocket", "dog face", "snowman", "red heart"),
}
DEMO_SEEDS = 4


def load_pipeline(name: str, text_encoder: str | None = None, device: str = "cpu"):
    """A shipped model, a saved directory, or (random weights) a preset."""
    from hart.pipeline import PIPELINE_PRESETS, HARTPipeline

    if name in PIPELINE_PRESETS and not Path(name).is_dir():
        print(f"note: {name} is a preset: random weights", file=sys.stderr)
        return HARTPipeline.from_preset(name, text_encoder=text_encoder, device=device)
    return HARTPipeline.from_pretrained(name, device=device, text_encoder=text_encoder)


def cmd_generate(args: argparse.Namespace) -> int:
    if (args.prompt is None) == (args.prompts is None):
        raise ValueError("give exactly one of PROMPT or --prompts FILE")
    if args.prompts is not None:
        return generate_from_file(args)
    if args.out_dir is not None or args.n_per_prompt is not None:
        raise ValueError("--out-dir and --n-per-prompt go with --prompts; a single PROMPT takes --out and --n")
    from tokenizer.data.images import image_grid

    n = 4 if args.n is None else args.n
    t0 = time.perf_counter()
    path = writable_file(Path(args.out or "outputs/out.png"))  # before the work, not after it
    pipe = load_pipeline(args.model, args.text_encoder, args.device or "cpu")
    out = pipe([args.prompt] * n, seed=args.seed, batch_size=args.batch_size, **sampling_flags(args))
    if args.grid or n == 1:
        image_grid(out.images, min(n, GRID_COLUMNS)).save(path)
        written = [path]
    else:
        written = [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(n)]
        for img, p in zip(out.images, written, strict=True):
            img.save(p)
    print(f"wrote {', '.join(map(str, written))} in {time.perf_counter() - t0:.1f} s")
    return 0


def writable_file(path: Path) -> Path:
    """``path`` if a PNG can be written there (its folder is created), else a clear error."""
    import os

    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name such as {path / 'out.png'}")
    if path.suffix.lower() != ".png":
        raise ValueError(f"--out {path}: the output must be a .png file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the output folder {path.parent}: {e.strerror}") from e
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"cannot write {path}: no write permission; choose another --out")
    return path


def generate_from_file(args: argparse.Namespace) -> int:
    """``hart generate --prompts FILE --out-dir DIR``: this process's share (accelerate launch-ready)."""
    from hart.batch_generate import METADATA, generate_prompt_file, process_state
    from hart.prompt_file import read_prompts

    if args.out_dir is None:
        raise ValueError("--prompts needs --out-dir")
    if args.out is not None or args.n is not None or args.grid:
        raise ValueError("--out, --n and --grid go with a single PROMPT; --prompts takes --out-dir and --n-per-prompt")
    read_prompts(args.prompts)  # a bad file fails before the model loads
    state = process_state(args.device)
    pipe = load_pipeline(args.model, args.text_encoder, str(args.device or state.device))
    summary = generate_prompt_file(pipe, args.prompts, args.out_dir, args.model,
                                   n_per_prompt=args.n_per_prompt or 1, seed=args.seed,
                                   batch_size=args.batch_size, state=state, **sampling_flags(args))
    if state.is_main_process:
        rate = summary.generated / summary.seconds if summary.seconds > 0 else 0.0
        print(f"{args.out_dir}: {summary.generated} images generated, {summary.present} already present, "
              f"{summary.planned} in all; {summary.seconds:.1f} s on {state.num_processes} process(es), "
              f"{rate:.2f} images/s (model loading excluded); metadata in {Path(args.out_dir) / METADATA}")
    return 0


def sampling_flags(args: argparse.Namespace) -> dict:
    """The sampling overrides of a generate command line (None: the model's setting)."""
    return {"cfg_scale": args.cfg_scale, "top_k": args.top_k, "top_p": args.top_p,
            "temperature": args.temperature, "diffusion_steps": args.diffusion_steps}


def cmd_demo(args: argparse.Namespace) -> int:
    from hart.pipeline import HARTPipeline, shipped_models
    from tokenizer.data.images import image_grid

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in shipped_models():
        t0 = time.perf_counter()
        pipe = HARTPipeline.from_pretrained(name)
        prompts = DEMO_PROMPTS.get(name, ("a picture",))
        images = pipe([p for p in prompts for _ in range(DEMO_SEEDS)], seed=0, batch_size=len(prompts) * DEMO_SEEDS,
                      progress=False).images
        path = out / f"{name}.png"
        image_grid(images, DEMO_SEEDS).save(path)
        print(f"{name}: wrote {path} ({len(prompts)} prompts, one per row, {DEMO_SEEDS} seeds) "
              f"in {time.perf_counter() - t0:.1f} s")
        for p in prompts:
            print(f"  {p}")
    return cmd_reconstruct(argparse.Namespace(model="photo-f8", images=[], out=str(out / "reconstruction.png")))


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from hart.pipeline import PIPELINE_PRESETS, HARTPipeline

    if is_tokenizer(args.model):
        return tokenizer_info(args.model, args.json)
    if args.model in PIPELINE_PRESETS and not Path(args.model).is_dir():
        pipe = HARTPipeline.from_preset(args.model, meta=True)
    else:
        pipe = HARTPipeline.from_pretrained(args.model)
    tc = pipe.transformer.config
    info = {
        "model": args.model, "params": pipe.param_counts(), "patch_nums": list(tc.patch_nums),
        "tokens_per_scale": [p * p for p in tc.patch_nums], "image_tokens": tc.image_tokens,
        "image_size": pipe.tokenizer.config.image_size, "vocab_size": tc.vocab_size,
        "text_encoder": {"kind": pipe.text_spec.kind, "path": pipe.text_spec.path,
                         "architecture": pipe.text_spec.architecture, "width": tc.text_dim,
                         "max_length": tc.max_text_len},
        "sampling": dataclasses.asdict(pipe.settings),
        "one_step_head": None if pipe.head_1step is None else {
            "params": sum(p.numel() for p in pipe.head_1step.parameters()), **dataclasses.asdict(pipe.one_step)},
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{args.model}: {info['image_size']} px, {tc.num_scales} scales, {tc.image_tokens} image tokens")
    for name, n in info["params"].items():
        print(f"  {name:<15} {n / 1e6:10.2f} M parameters")
    print(f"  patch_nums      {info['patch_nums']}")
    print(f"  tokens/scale    {info['tokens_per_scale']}")
    te = info["text_encoder"]
    print(f"  text encoder    {te['kind']} {te['architecture'] or te['path']} (width {te['width']}, "
          f"max {te['max_length']} tokens)")
    one = info["one_step_head"]
    if one is not None:
        print(f"  one-step head   {one['params'] / 1e6:10.2f} M parameters, generator_t {one['generator_t']} "
              f"(diffusion_steps 1; distilled from {one['teacher_steps']} steps, guidance {one['guidance_scale']})")
    return 0


def is_tokenizer(name: str) -> bool:
    """Whether ``name`` is a shipped tokenizer, a tokenizer preset or a tokenizer directory (no pipeline.json)."""
    from hart.pipeline import PIPELINE_PRESETS, shipped_models
    from tokenizer.config import PRESETS
    from tokenizer.hybrid import shipped_names

    path = Path(name)
    if path.is_dir():
        return (path / "config.json").is_file() and not (path / "pipeline.json").is_file()
    if name in shipped_models() or name in PIPELINE_PRESETS:
        return False
    return name in shipped_names() or name in PRESETS


def tokenizer_info(name: str, as_json: bool) -> int:
    """``hart info`` for a tokenizer: sizes, scales, parameters."""
    import json

    import torch

    from tokenizer.config import PRESETS
    from tokenizer.hybrid import HybridTokenizer, shipped_names

    if Path(name).is_dir() or name in shipped_names():
        tok = HybridTokenizer.from_pretrained(name)
    else:
        with torch.device("meta"):
            tok = HybridTokenizer(PRESETS[name])
    c = tok.config
    f = c.image_size // c.patch_nums[-1]
    info = {"tokenizer": name, "image_size": c.image_size, "downsample": f, "vocab_size": c.vocab_size,
            "latent_channels": c.latent_channels, "patch_nums": list(c.patch_nums),
            "tokens": sum(p * p for p in c.patch_nums), "params": sum(p.numel() for p in tok.parameters()),
            "config": dataclasses.asdict(c)}
    if as_json:
        print(json.dumps(info))
        return 0
    print(f"{name}: hybrid tokenizer, {c.image_size} px -> {c.patch_nums[-1]} x {c.patch_nums[-1]} x "
          f"{c.latent_channels} latent (f {f})")
    print(f"  parameters      {info['params'] / 1e6:10.2f} M")
    print(f"  codebook        {c.vocab_size} codes of {c.latent_channels} channels")
    print(f"  patch_nums      {info['patch_nums']} ({info['tokens']} tokens)")
    print(f"  reconstruct     hart reconstruct --model {name} IMAGE --out OUT.png")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from hart.pipeline import shipped_models

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401

        from hart.serve import serve
    except ImportError as e:
        raise RuntimeError(f"hart serve needs the web extras ({e.name} is missing): "
                           "pip install -e '.[serve]'") from None
    serve(args.model or shipped_models(), args.host, args.port, args.max_queue, args.max_images)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hart.train import HARTTrainConfig, train_hart

    final = train_hart(config_from_args(HARTTrainConfig, args), resume=args.resume, overwrite=args.overwrite)
    print(f"saved model to {final}; load it with HARTPipeline.from_pretrained({str(final)!r}) "
          f"or hart generate PROMPT --model {final}")
    return 0


def cmd_train_diffusion(args: argparse.Namespace) -> int:
    from hart.dit.train import DiTTrainConfig, train_diffusion

    final = train_diffusion(config_from_args(DiTTrainConfig, args), resume=args.resume, overwrite=args.overwrite)
    print(f"saved the diffusion baseline to {final}; load it with DiTPipeline.from_pretrained({str(final)!r})")
    return 0


def cmd_distill_diffusion(args: argparse.Namespace) -> int:
    from hart.dit.distill import DistillDiffusionConfig, distill_diffusion

    final = distill_diffusion(config_from_args(DistillDiffusionConfig, args), resume=args.resume,
                              overwrite=args.overwrite)
    print(f"saved the one-step student to {final}; load it with DiTPipeline.from_pretrained({str(final)!r})")
    return 0


def cmd_distill_head(args: argparse.Namespace) -> int:
    from hart.distill_head import DistillHeadConfig, distill_head

    final = distill_head(config_from_args(DistillHeadConfig, args), resume=args.resume, overwrite=args.overwrite)
    if final is not None:
        print(f"saved the pipeline with its one-step head to {final}; use it with "
              f"hart generate PROMPT --model {final} --diffusion-steps 1")
    return 0


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from tokenizer.train import TokenizerTrainConfig, train_tokenizer

    cfg = config_from_args(TokenizerTrainConfig, args)
    final = train_tokenizer(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"saved tokenizer to {final}; load it with HybridTokenizer.from_pretrained({str(final)!r})")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from tokenizer import HybridTokenizer
    from tokenizer.reconstruct import load_square, reconstruct, sample_photos, side_by_side

    t0 = time.perf_counter()
    tok = HybridTokenizer.from_pretrained(args.model)
    paths = [Path(p) for p in args.images] or sample_photos()
    images = torch.stack([load_square(p, tok.config.image_size) for p in paths])
    rec = reconstruct(tok, images)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(rec).save(out)
    print(f"{'image':<28} {'discrete dB':>12} {'hybrid dB':>10}")
    for p, d, h in zip(paths, rec.psnr_discrete, rec.psnr_hybrid, strict=False):
        print(f"{p.name:<28} {d:12.2f} {h:10.2f}")
    print(f"{'mean':<28} {rec.psnr_discrete.mean():12.2f} {rec.psnr_hybrid.mean():10.2f}")
    print(f"wrote {out} (columns: original, discrete-only, hybrid) in {time.perf_counter() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hart", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate images from a prompt or a prompt file (accelerate-ready)")
    gen.add_argument("prompt", nargs="?", help="text prompt (or use --prompts)")
    gen.add_argument("--prompts", help="prompt file: .txt (one prompt a line) or .jsonl ({\"prompt\": ..., "
                     "\"seed\": optional}); writes OUT_DIR/{line:06d}.png (line numbers from 1, blank "
                     "lines counted) and OUT_DIR/metadata.jsonl; skips images already there")
    gen.add_argument("--out-dir", help="output folder of --prompts")
    gen.add_argument("--n-per-prompt", type=int,
                     help="images per prompt line with --prompts, named {line:06d}_{j}.png when > 1 (default: 1)")
    gen.add_argument("--model", default="hart-shapes-64",
                     help="shipped model, directory or preset (default: %(default)s)")
    gen.add_argument("--n", type=int, help="images of a single PROMPT (default: 4)")
    gen.add_argument("--seed", type=int, default=0,
                     help="random seed; image i of PROMPT, or line L image j of --prompts, has its own seed "
                          "derived from it (default: %(default)s)")
    gen.add_argument("--out", help="output PNG of a single PROMPT (default: outputs/out.png)")
    gen.add_argument("--grid", action="store_true", help="write one grid instead of one file per image")
    gen.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: %(default)s)")
    add_threads_flag(gen)
    gen.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale (default: the model's)")
    gen.add_argument("--top-k", type=int, help="top-k sampling, 0 = off (default: the model's)")
    gen.add_argument("--top-p", type=float, help="nucleus sampling in (0, 1] (default: the model's)")
    gen.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    gen.add_argument("--diffusion-steps", type=int, help="residual diffusion steps (default: 8)")
    gen.add_argument("--text-encoder", help="text encoder directory (e.g. Qwen2-1.5B for full-size models)")
    gen.add_argument("--device", help="torch device (default: cpu; with --prompts, each process's own "
                     "accelerate device: leave it unset under accelerate launch)")
    gen.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="draw a grid of prompts with every shipped model, reconstruct sample photos")
    demo.add_argument("--out-dir", default="outputs", help="folder of the PNGs (default: %(default)s)")
    add_threads_flag(demo)
    demo.set_defaults(func=cmd_demo)

    info = sub.add_parser("info", help="components, parameter counts and scales of a model, tokenizer or preset")
    info.add_argument("model", help="shipped model or tokenizer (hart-shapes-64, photo-f8, ...), preset or directory")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    srv = sub.add_parser("serve", help="a local web app (and JSON endpoint) that generates from prompts")
    srv.add_argument("--model", action="append", help="model to serve (repeatable; default: every shipped model)")
    srv.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s: this machine only)")
    srv.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    srv.add_argument("--max-queue", type=int, default=4, help="waiting requests; more get 503 (default: %(default)s)")
    srv.add_argument("--max-images", type=int, default=16, help="most images per request (default: %(default)s)")
    add_threads_flag(srv)
    srv.set_defaults(func=cmd_serve)

    add_training_parser(sub, "train", "train the transformer and diffusion head (accelerate-ready)",
                        _config_cls("hart.train", "HARTTrainConfig"), TRAIN_HART_HELP, cmd_train)

    rec = sub.add_parser("reconstruct", help="reconstruct photos through a tokenizer: discrete-only vs hybrid")
    rec.add_argument("images", nargs="*", help="image files (default: the shipped sample photos)")
    rec.add_argument("--model", default="photo-f8", help="shipped tokenizer name or directory (default: photo-f8)")
    rec.add_argument("--out", default="outputs/reconstruction.png", help="PNG to write (default: %(default)s)")
    rec.set_defaults(func=cmd_reconstruct)

    add_training_parser(sub, "train-diffusion", "train the latent diffusion baseline (PixArt-style DiT) on a HART "
                        "tokenizer's latents", _config_cls("hart.dit.train", "DiTTrainConfig"), TRAIN_DIT_HELP,
                        cmd_train_diffusion)
    add_training_parser(sub, "distill-diffusion", "distil a trained diffusion baseline into a one-step student (DMD)",
                        _config_cls("hart.dit.distill", "DistillDiffusionConfig"), DISTILL_DIFFUSION_HELP,
                        cmd_distill_diffusion)
    add_training_parser(sub, "distill-head", "distil a pipeline's residual head into a one-step head (DMD)",
                        _config_cls("hart.distill_head", "DistillHeadConfig"), DISTILL_HEAD_HELP, cmd_distill_head)
    add_training_parser(sub, "train-tokenizer", "train a hybrid tokenizer (accelerate-ready)",
                        _config_cls("tokenizer.train", "TokenizerTrainConfig"), TRAIN_TOKENIZER_HELP,
                        cmd_train_tokenizer)
    return parser



def add_training_parser(sub, name: str, text: str, config_cls, helps: dict[str, str], func) -> None:
    """A training sub-command: --config recipe, --resume, and one flag per config field."""
    parser = sub.add_parser(name, help=text)
    parser.add_argument("--config", help="YAML recipe whose keys are the flags below (flags override it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/checkpoint.safetensors (same settings; more --steps allowed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in OUT_DIR (its checkpoint, final model, log and samples)")
    add_dataclass_flags(parser, config_cls, helps)
    parser.set_defaults(func=func)


def _config_cls(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


EXIT_ERROR, EXIT_INTERRUPTED = 2, 130  # 130 = 128 + SIGINT, the shell's convention for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core; on a machine "
                        "that other work keeps busy, 1 or 2 is often many times faster)")


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (commands that have it) before any work."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a failure is one line on stderr and exit 2 (``--debug``: the traceback)."""
    import yaml

    args = build_parser().parse_args(argv)
    try:
        set_threads(args)
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"hart {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`hart info ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_BROKEN_PIPE
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, yaml.YAMLError) as e:
        if args.debug:
            raise
        print(f"hart {args.command}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_ERROR


def one_line(error: BaseException) -> str:
    text = str(error) if not isinstance(error, KeyError) else f"missing key {error}"
    return " ".join(text.split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
