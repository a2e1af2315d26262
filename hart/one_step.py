"""A one-step residual head distilled from the 8-step one with DMD (``hart.dmd``), stored beside it.

A model directory may hold ``diffusion_head_1step/``: ``config.json`` (a ``DiffusionHeadConfig``,
the same class as ``diffusion_head/``), ``model.safetensors`` and ``one_step.json`` (a
``OneStepSpec``: how the head is evaluated). ``HARTPipeline`` samples the final-scale residual with
it when asked for ``diffusion_steps=1``; every other step count runs the 8-step head.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from hart.config import DiffusionHeadConfig
from hart.diffusion_head import DiffusionHead
from tokenizer.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    load_component,
    load_config,
    save_component,
    save_json,
)
from tokenizer.config_types import checked_fields

ONE_STEP_DIR = "diffusion_head_1step"
SPEC_NAME = "one_step.json"
ONE_STEP_FILES = (CONFIG_NAME, WEIGHTS_NAME, SPEC_NAME)


@dataclass(frozen=True)
class OneStepSpec:
    """How a one-step head is evaluated: x0 of pure noise read as x_{generator_t} (``hart.dmd.one_step``).

    generator_t: the timestep of the generator, ``hart.dmd.generator_timestep(num_steps, frac)``
        (980 of 1000; ``hart.dmd``'s docstring says why not 999).
    clip_x0: bound on the output, in units of the scaled residual (None: no clamp).
    teacher_steps, guidance_scale: the teacher's step count and the CFG scale baked in at
        distillation (informational: the one-step head runs on the conditioned rows only).
    """

    generator_t: int
    clip_x0: float | None = None
    teacher_steps: int = 8
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, value in checked_fields(OneStepSpec, dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)  # ints stay ints, floats are finite floats
        if self.generator_t < 0:
            raise ValueError(f"generator_t must be >= 0, got {self.generator_t}")
        if self.clip_x0 is not None and self.clip_x0 <= 0:
            raise ValueError(f"clip_x0 must be > 0 or null (no clamp), got {self.clip_x0}")
        if self.teacher_steps < 1:
            raise ValueError(f"teacher_steps must be >= 1, got {self.teacher_steps}")
        if self.guidance_scale < 1:
            raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {self.guidance_scale}")


def save_one_step(directory: str | os.PathLike, head: DiffusionHead, spec: OneStepSpec) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``one_step.json`` into ``directory``."""
    directory = Path(directory)
    save_component(directory, head.config, head)
    save_json(directory / SPEC_NAME, dataclasses.asdict(spec))
    return directory


def load_one_step(directory: str | os.PathLike) -> tuple[DiffusionHead, OneStepSpec]:
    """The one-step head (built on meta, weights assigned strictly, eval mode) and its spec.

    Raises ``CheckpointError`` naming the file when one is missing, corrupt or invalid, or when
    ``generator_t`` lies outside the head's [0, train_steps - 1].
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory: a one-step head is a folder holding "
                              f"{', '.join(ONE_STEP_FILES)}; remove it or re-save the model with save_pretrained")
    spec_path = directory / SPEC_NAME
    if not spec_path.is_file():
        # load_config's own message names config.json and model.safetensors only.
        raise CheckpointError(f"{spec_path} not found: a one-step head folder holds {', '.join(ONE_STEP_FILES)}; "
                              "re-save the model with save_pretrained, or remove the folder to use the 8-step "
                              "head only")
    spec = load_config(directory, OneStepSpec, SPEC_NAME)
    head = load_component(directory, DiffusionHeadConfig, DiffusionHead)
    T = head.config.train_steps
    if spec.generator_t >= T:
        raise CheckpointError(f"{spec_path}: generator_t {spec.generator_t} must lie in "
                              f"[0, {T - 1}] (the head's train_steps is {T})")
    return head, spec


def remove_one_step(directory: str | os.PathLike) -> None:
    """Delete the files ``save_one_step`` writes in ``directory``, then the folder if that left it empty."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for name in ONE_STEP_FILES:
        (directory / name).unlink(missing_ok=True)
    if not any(directory.iterdir()):
        directory.rmdir()
