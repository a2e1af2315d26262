"""Help texts of the training commands' flags (one per config field), kept apart from the CLI's logic."""

COMMON_TRAIN_HELP = {
    "steps": "optimizer steps in total",
    "batch_size": "images per micro-batch and process",
    "grad_accum": "micro-batches per optimizer step",
    "lr": "peak learning rate (AdamW)",
    "min_lr_ratio": "final learning rate as a fraction of --lr (cosine decay)",
    "warmup_steps": "linear warm-up steps",
    "betas": "AdamW betas",
    "grad_clip": "gradient norm clip (0: off)",
    "max_skipped_steps": "optimizer steps in a row skipped for a non-finite loss or gradient before the run "
                         "stops with an error (the last good checkpoint is kept)",
}

TRAIN_TOKENIZER_HELP = {**COMMON_TRAIN_HELP,
    "out_dir": "run directory: checkpoint.safetensors, log.jsonl, samples/ and final/ (the saved tokenizer)",
    "data": "data sources: 'shapes', 'emoji', 'sklearn-samples' or image folders (random rescaled crops)",
    "model": "tokenizer preset name (see tokenizer.PRESETS) or a TokenizerConfig JSON file",
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
    "init_from": "start from these weights: a run's checkpoint.safetensors (or its directory) or a saved tokenizer",
    "pca_init_images": "initialise a patch_skip model as a patch PCA of this many training images (0: off)",
    "freeze": "parts left untrained: encoder quant_conv quantizer post_quant_conv decoder "
              "(HART's decoder fine-tune: encoder quant_conv)",
}


TRAIN_HART_HELP = {**COMMON_TRAIN_HELP,
    "out_dir": "run directory: checkpoint.safetensors, log.jsonl, samples/ and final/ (a HARTPipeline directory)",
    "data": "'shapes', 'emoji' (Noto Color Emoji font, see tokenizer.data.emoji) or an image-text folder",
    "preset": "pipeline preset of the transformer, head and text encoder (e.g. cpu-64, tiny)",
    "tokenizer": "trained tokenizer (shipped name or directory), frozen; empty: the preset's, random",
    "init_from": "continue training from a saved pipeline (shipped name or directory; same preset and tokenizer)",
    "weight_decay": "AdamW weight decay of matrices",
    "cfg_drop": "probability of training a caption as the empty prompt (classifier-free guidance)",
    "diffusion_weight": "weight of the residual diffusion loss",
    "head_token_ratio": "fraction of final-scale tokens the diffusion head trains on per step",
    "ema_decay": "EMA decay of the weights that are saved and sampled",
    "ema_warmup": "warm the EMA decay up as min(ema_decay, (1 + step) / (10 + step)); --no-ema-warmup: constant",
    "log_every": "steps between log lines",
    "sample_every": "steps between sample grids in samples/ (0: never)",
    "ckpt_every": "steps between checkpoints (0: only at the end)",
    "sample_prompts": "prompts of the sample grids",
    "seed": "seed of the initialisation, data, caption dropout and diffusion noise",
    "mixed_precision": "'no', 'bf16' or 'fp16' (accelerate)",
    "num_workers": "data loader worker processes",
}


DISTILL_HEAD_HELP = {
    "model": "teacher pipeline: shipped name or directory whose 8-step residual head is distilled",
    "out_dir": "run directory: checkpoint.safetensors, log.jsonl and final/ (the pipeline plus its one-step head)",
    "data": "whose captions are the prompts of the condition pool: 'shapes', 'emoji' or an image-text folder",
    "steps": "generator updates in total",
    "batch_size": "residual tokens per DMD step",
    "pool_images": "images the transformer samples (with the pipeline's defaults) for the pool of head conditions",
    "regression_weight": "weight of DMD's regression onto the teacher's deterministic 8-step outputs (0: DMD2)",
    "regression_tokens": "tokens of the regression set (with regression_weight > 0)",
    "fake_steps": "fake-score updates per generator update (DMD2's two time-scale rule: 5; DMD: 1)",
    "generator_lr": "Adam learning rate of the one-step generator",
    "fake_lr": "Adam learning rate of the fake score",
    "generator_t_frac": "timestep of the one-step generator as a fraction of the schedule (see hart.dmd)",
    "log_every": "steps between log lines",
    "ckpt_every": "steps between checkpoints (0: only at the end)",
    "seed": "seed of the condition pool, the noise and the regression pairs",
}


TRAIN_DIT_HELP = {**COMMON_TRAIN_HELP,
    "out_dir": "run directory: checkpoint.safetensors, log.jsonl, samples/ and final/ (a DiTPipeline directory)",
    "data": TRAIN_HART_HELP["data"],
    "preset": "DiT preset (cpu-64: sized like the cpu-64 HART transformer + head; tiny)",
    "tokenizer": "trained HART tokenizer whose latent the model denoises (shipped name or directory)",
    "weight_decay": "AdamW weight decay",
    "cfg_drop": TRAIN_HART_HELP["cfg_drop"],
    **{k: TRAIN_HART_HELP[k] for k in ("ema_decay", "ema_warmup", "log_every", "sample_every", "ckpt_every",
                                       "sample_prompts", "mixed_precision", "num_workers")},
    "seed": "seed of the initialisation, data, caption dropout and diffusion noise",
}


DISTILL_DIFFUSION_HELP = {
    "model": "teacher: a trained diffusion baseline directory (hart train-diffusion's final/)",
    "out_dir": "run directory: checkpoint.safetensors, log.jsonl and final/ (the one-step student's DiTPipeline)",
    "data": "whose captions condition the student: shapes, emoji or an image-text folder",
    "steps": "generator updates",
    "batch_size": "images per DMD step",
    "pool_prompts": "training captions whose text states are encoded once and drawn from",
    "fake_steps": "fake-score updates per generator update (DMD2's two time-scale rule)",
    "generator_lr": "Adam learning rate of the one-step generator",
    "fake_lr": "Adam learning rate of the fake score",
    "generator_t_frac": "the generator's timestep as a fraction of T (0.98: see hart/dmd.py)",
    "log_every": "steps between log lines",
    "ckpt_every": "steps between checkpoints (0: only at the end)",
    "seed": "seed of the prompt pool and of every DMD draw",
}
