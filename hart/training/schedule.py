"""Learning-rate schedule, run-length checks and EMA shared by the trainers."""

from __future__ import annotations

import math

import torch
from torch import nn


def check_run_lengths(cfg) -> None:
    """steps, batch_size and grad_accum of a training config must be at least 1."""
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ValueError("steps, batch_size and grad_accum must be at least 1")


def lr_at(step: int, cfg) -> float:
    """Linear warm-up over ``cfg.warmup_steps``, then cosine decay to ``cfg.min_lr_ratio * cfg.lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The EMA decay of optimizer step ``step`` (0-based): ``decay``, or with ``warmup``
    min(decay, (1 + step) / (10 + step)), so the average forgets its starting weights (random ones,
    or those of an init_from model) within the first few hundred steps instead of keeping
    decay**steps of them (0.998**1300 = 7%)."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (same structure)."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - decay)
