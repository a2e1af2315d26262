"""Data-parallel bookkeeping: the process layout, the global batch, reduced logs and gathers.

Every process runs the same loop on its own share of each global batch; gradients are averaged by
the prepared (DDP-wrapped) model. What the loop decides outside the gradient (codebook restarts,
logs, checkpoints) must be the same on every process: statistics are reduced or gathered first, and
every process then draws the same decision from the same (seed, step) generator.

Global batch G = processes x batch_size x grad_accum. Optimizer step s consumes the stream items
[s G, (s + 1) G): micro-batch j of process r holds items ((s a + j) w + r) B ... + B - 1, so any
layout with the same G sees the same items at every step (``tokenizer.data.sources.StepBatches``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass

import torch
from accelerate import Accelerator


@dataclass(frozen=True)
class Layout:
    """How a run splits its global batch over processes and micro-batches."""

    processes: int
    batch_size: int  # per process and micro-batch
    grad_accum: int

    @property
    def global_batch(self) -> int:
        return self.processes * self.batch_size * self.grad_accum

    def describe(self) -> str:
        return (f"{self.processes} process(es) x batch {self.batch_size} x grad_accum {self.grad_accum} "
                f"= global batch {self.global_batch}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def current_layout(acc: Accelerator, cfg) -> Layout:
    return Layout(acc.num_processes, cfg.batch_size, cfg.grad_accum)


def check_resume_layout(stored: dict, now: Layout, path) -> str | None:
    """Refuse a resume that changes the global batch; describe a kept one that changes the split.

    Returns a note to print when the layout changed but the global batch is kept, else None.
    """
    before = Layout(**stored)
    if before == now:
        return None
    if before.global_batch != now.global_batch:
        hint = ""
        per_micro = now.processes * now.batch_size
        if before.global_batch % per_micro == 0:
            hint = f" (with this process count and batch size: --grad-accum {before.global_batch // per_micro})"
        raise RuntimeError(
            f"{path} was written by a run of {before.describe()}; this run has {now.describe()}. Resuming "
            "would change the global batch and so the training; keep the global batch by setting --batch-size "
            f"and --grad-accum{hint}, or start afresh in a new --out-dir")
    return (f"resuming {path} with {now.describe()} (was {before.describe()}): same global batch, "
            "so the same data at every step")


UNSUPPORTED = {"FSDP", "DEEPSPEED", "MEGATRON_LM"}


def refuse_unsupported_distribution(acc: Accelerator) -> None:
    """The trainers are data-parallel (DDP) only: their EMA copy, checkpoints and samples use the
    full, unsharded weights on every process. A sharded launch is refused before any work."""
    kind = acc.distributed_type.name if hasattr(acc.distributed_type, "name") else str(acc.distributed_type)
    if kind in UNSUPPORTED:
        raise RuntimeError(f"{kind} is not supported by the hart trainers yet (they keep an unsharded EMA and write "
                           "unsharded checkpoints); launch with DDP instead: accelerate launch --multi_gpu ... "
                           "(configs/accelerate/multi-gpu.yaml)")


def say(acc: Accelerator, command: str, note: str | None) -> None:
    """Print a note (if any) once, from the main process, on stderr: ``hart COMMAND: note``."""
    if note and acc.is_main_process:
        print(f"hart {command}: {note}", file=sys.stderr)


def slow_bf16_note(acc: Accelerator) -> str | None:
    """bf16 autocast on a CPU without bf16 hardware runs emulated kernels, several times slower than fp32."""
    import torch

    if acc.device.type == "cpu" and acc.mixed_precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return ("bf16 autocast on this CPU is emulated (no AVX512-BF16 / AMX) and several times slower than fp32 "
                "(benchmarks/train_throughput.py); --mixed-precision no is faster here")
    return None


def reduce_logs(acc: Accelerator, logs: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """The mean over processes of each scalar log entry (one all-reduce for all of them)."""
    keys = sorted(logs)
    values = torch.tensor([float(v.detach()) if isinstance(v := logs[k], torch.Tensor) else float(v) for k in keys],
                          dtype=torch.float64, device=acc.device)
    if acc.num_processes > 1:
        values = acc.reduce(values, reduction="mean")
    return dict(zip(keys, values.tolist(), strict=True))


def gather_rows(acc: Accelerator, x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (n, ...) of every process in rank order: the global micro-batch's rows."""
    return acc.gather(x.contiguous()) if acc.num_processes > 1 else x


def sum_over_processes(acc: Accelerator, x: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``x`` over processes (e.g. codebook usage counts)."""
    if acc.num_processes == 1:
        return x
    return acc.reduce(x.to(acc.device), reduction="sum").to(x.device)


def single_process_launch_note(acc: Accelerator) -> str | None:
    """Catch launches that do not give the processes that were asked for.

    - ``accelerate launch --num_processes N`` (N > 1) without ``--multi_gpu`` on a machine without
      GPUs runs the script once; it still sets MASTER_ADDR / MASTER_PORT (only for N > 1) but no
      WORLD_SIZE: a note says so.
    - torchrun started WORLD_SIZE processes but the Accelerator sees one (e.g. a multi-GPU config on
      a machine without GPUs and without ACCELERATE_USE_CPU=1): every process would train its own
      copy and overwrite the others' files, so this is an error.
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    if world != acc.num_processes:
        raise RuntimeError(f"{world} processes were started (WORLD_SIZE) but accelerate joined {acc.num_processes}: "
                           "on a machine without GPUs set ACCELERATE_USE_CPU=1 and launch with --multi_gpu")
    launched = "ACCELERATE_USE_CPU" in env and "MASTER_PORT" in env and "WORLD_SIZE" not in env
    if acc.num_processes == 1 and launched:
        return ("accelerate launch was asked for several processes but started one; on a machine "
                "without GPUs add --multi_gpu (with ACCELERATE_USE_CPU=1) to run them")
    return None
