"""The ``hart`` command line: ``hart reconstruct`` and ``hart train-tokenizer``.

Library code does the work; this module only parses flags and prints results.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hart.cli_config import add_dataclass_flags, config_from_args

TRAIN_TOKENIZER_HELP = {
    "out_dir": "run directory: checkpoint.pt, log.jsonl, samples/ and final/ (the saved tokenizer)",
    "data": "data sources: 'shapes', 'sklearn-samples' or image folders (random rescaled crops)",
    "model": "tokenizer preset name (see tokenizer.PRESETS) or a TokenizerConfig JSON file",
    "steps": "optimizer steps in total",
    "batch_size": "images per micro-batch and process",
    "grad_accum": "micro-batches per optimizer step",
    "lr": "peak learning rate (AdamW)",
    "min_lr_ratio": "final learning rate as a fraction of --lr (cosine decay)",
    "warmup_steps": "linear warm-up steps",
    "betas": "AdamW betas",
    "grad_clip": "gradient norm clip (0: off)",
    "l1_weight": "weight of the L1 reconstruction loss",
    "l2_weight": "weight of the L2 reconstruction loss",
    "vq_weight": "weight of the codebook + commitment loss",
    "discrete_prob": "probability that a step trains the discrete path decode(f_hat) (HART: 0.5)",
    "gan_weight": "weight of the patch-GAN generator loss (0: no GAN)",
    "gan_start": "step at which the GAN terms join",
    "restart_every": "steps between restarts of unused codebook entries (0: never)",
    "max_zoom_out": "largest downscale of a photo before cropping, as a multiple of the crop size",
    "log_every": "steps between log lines (log.jsonl and the progress bar)",
    "sample_every": "steps between reconstruction grids in samples/ (0: never)",
    "ckpt_every": "steps between checkpoints (0: only at the end)",
    "seed": "seed of the initialisation, the data stream and the path choices",
    "mixed_precision": "'no', 'bf16' or 'fp16' (accelerate)",
    "num_workers": "data loader worker processes",
}


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from tokenizer.train import TokenizerTrainConfig, train_tokenizer

    cfg = config_from_args(TokenizerTrainConfig, args)
    final = train_tokenizer(cfg, resume=args.resume)
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
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("reconstruct", help="reconstruct photos through a tokenizer: discrete-only vs hybrid")
    rec.add_argument("images", nargs="*", help="image files (default: the shipped sample photos)")
    rec.add_argument("--model", default="photo-f8", help="shipped tokenizer name or directory (default: photo-f8)")
    rec.add_argument("--out", default="outputs/reconstruction.png", help="PNG to write (default: %(default)s)")
    rec.set_defaults(func=cmd_reconstruct)

    tt = sub.add_parser("train-tokenizer", help="train a hybrid tokenizer (accelerate-ready)")
    tt.add_argument("--config", help="YAML recipe whose keys are the flags below (flags override it)")
    tt.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt if present")
    add_dataclass_flags(tt, _train_config_cls(), TRAIN_TOKENIZER_HELP)
    tt.set_defaults(func=cmd_train_tokenizer)
    return parser


def _train_config_cls():
    from tokenizer.train import TokenizerTrainConfig

    return TokenizerTrainConfig


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"hart {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
