"""Sharded, resumable generation of a prompt file (``hart generate --prompts``), accelerate-ready.

Work: every (line, j) of a prompt file, j < n_per_prompt, in file order. Image j of a line is
``DIR/{line:06d}.png`` when n_per_prompt is 1, else ``DIR/{line:06d}_{j}.png``, drawn from a CPU
generator seeded with ``derive_seed(line_seed, j)``, where ``line_seed`` is the line's own "seed"
(.jsonl) or ``derive_seed(seed, line)``. Since each image has its own generator
(``HARTPipeline``), it depends on (model, settings, prompt, seed, line, j) only.

Sharding: the work list is cut into fixed chunks of ``batch_size`` in file order and chunk c goes
to process c % world; each chunk is one batch, so the batches and hence the floats are the same for
any number of processes. Images already on disk are skipped (a resumed chunk runs the missing
images only). Each process journals the records of what it wrote to ``metadata.rank{r}.jsonl``;
after a barrier process 0 folds the journals into ``metadata.jsonl`` (one record per image on
disk, sorted by line and j, written atomically) and deletes them. An image on disk whose record
(in metadata.jsonl or a journal) names another prompt, seed, model or settings is an error, so a
resumed run never mixes two runs' images in one folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from hart.prompt_file import PromptLine, read_prompts
from hart.sampler import SamplingSettings
from hart.seeding import derive_seed
from tokenizer.checkpoint import atomic_write

if TYPE_CHECKING:
    from accelerate import PartialState

    from hart.pipeline import HARTPipeline

METADATA = "metadata.jsonl"
JOURNAL_GLOB = "metadata.rank*.jsonl"
CHECKED_FIELDS = ("prompt", "seed", "model", "sampling")  # what a resumed image must agree on


@dataclass(frozen=True)
class WorkItem:
    line: int
    j: int
    prompt: str
    line_seed: int
    seed: int  # the image's generator seed: derive_seed(line_seed, j)
    file: str  # name inside the output folder


@dataclass(frozen=True)
class Summary:
    planned: int  # images the prompt file asks for
    present: int  # already on disk at the start (skipped)
    seconds: float  # generation wall time of this process, model loading excluded

    @property
    def generated(self) -> int:
        return self.planned - self.present


def image_name(line: int, j: int, n_per_prompt: int) -> str:
    return f"{line:06d}.png" if n_per_prompt == 1 else f"{line:06d}_{j}.png"


def plan(lines: list[PromptLine], n_per_prompt: int, seed: int) -> list[WorkItem]:
    """Every image of the prompt file, in file order (line, then j)."""
    if n_per_prompt < 1:
        raise ValueError(f"n_per_prompt must be >= 1, got {n_per_prompt}")
    items = []
    for pl in lines:
        line_seed = pl.seed if pl.seed is not None else derive_seed(seed, pl.line)
        items += [WorkItem(pl.line, j, pl.prompt, line_seed, derive_seed(line_seed, j),
                           image_name(pl.line, j, n_per_prompt)) for j in range(n_per_prompt)]
    return items


def shard(items: list[WorkItem], batch_size: int, rank: int, world: int) -> list[list[WorkItem]]:
    """The chunks of process ``rank``: fixed ``batch_size`` chunks of the plan, chunk c to c % world."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    return chunks[rank::world]


def record(item: WorkItem, settings: SamplingSettings, model: str) -> dict:
    """The metadata.jsonl line of one image."""
    return {"file": item.file, "line": item.line, "j": item.j, "prompt": item.prompt, "seed": item.seed,
            "line_seed": item.line_seed, "model": model, "sampling": dataclasses.asdict(settings)}


def process_state(device: str | None = None) -> PartialState:
    """accelerate's ``PartialState`` for this process (a plain one outside ``accelerate launch``).

    ``PartialState`` only forms a multi-process CPU group (gloo) when told ``cpu=True``; unlike
    ``Accelerator`` it does not read ACCELERATE_USE_CPU, so that flag, a ``cpu`` device or a
    machine without CUDA select the CPU here.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or (device or "").startswith("cpu") or (
        device is None and not torch.cuda.is_available())
    return PartialState(cpu=cpu)


def generate_prompt_file(pipe: HARTPipeline, prompts: str | os.PathLike, out_dir: str | os.PathLike, model: str,
                         n_per_prompt: int = 1, seed: int = 0, batch_size: int = 8,
                         state: PartialState | None = None, progress: bool = True, **overrides) -> Summary:
    """Generate this process's share of a prompt file into ``out_dir`` (see the module docstring).

    ``pipe``: a ``HARTPipeline`` on this process's device; ``model``: its name as recorded in the
    metadata; ``state``: an ``accelerate.PartialState`` (``process_state()`` if None);
    ``overrides``: sampling settings (None values keep the model's). Every process must call this.
    """
    state = state if state is not None else process_state(str(pipe.device))
    settings = dataclasses.replace(pipe.settings, **{k: v for k, v in overrides.items() if v is not None})
    items = plan(read_prompts(prompts), n_per_prompt, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    present = {it.file for it in items if (out / it.file).is_file()}
    check_resumed(out, [it for it in items if it.file in present], settings, model)
    mine = shard(items, batch_size, state.process_index, state.num_processes)
    state.wait_for_everyone()  # every check has read the journals before anyone appends to them
    t0 = time.perf_counter()
    journal = out / f"metadata.rank{state.process_index}.jsonl"
    for chunk in tqdm(mine, desc="generate", disable=not (progress and state.is_main_process)):
        todo = [it for it in chunk if it.file not in present]
        if not todo:
            continue
        images = pipe([it.prompt for it in todo], batch_size=len(todo), progress=False,
                      generator=[torch.Generator().manual_seed(it.seed) for it in todo],
                      **dataclasses.asdict(settings)).images
        for it, image in zip(todo, images, strict=True):  # atomic: a killed run leaves no half PNG to skip later
            atomic_write(out / it.file, lambda tmp, image=image: image.save(tmp, format="PNG"))
        with journal.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(record(it, settings, model)) + "\n" for it in todo)
    state.wait_for_everyone()
    seconds = time.perf_counter() - t0
    if state.is_main_process:
        write_metadata(out, [record(it, settings, model) for it in items])
    state.wait_for_everyone()
    return Summary(len(items), len(present), seconds)


def read_records(out: Path) -> dict[str, dict]:
    """Known records by file: metadata.jsonl, then journals of unfinished runs (newer, so they win)."""
    records = {}
    if (out / METADATA).is_file():
        for number, text in enumerate((out / METADATA).read_text(encoding="utf-8").splitlines(), start=1):
            try:
                rec = json.loads(text)
                records[rec["file"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{out / METADATA}:{number}: not a metadata record") from None
    for journal in sorted(out.glob(JOURNAL_GLOB)):
        for text in journal.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(text)
                records[rec["file"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # the torn last line of a killed process: its image is simply unrecorded
    return records


def check_resumed(out: Path, present: list[WorkItem], settings: SamplingSettings, model: str) -> None:
    """Raise if an image already on disk was recorded with another prompt, seed, model or settings."""
    known = read_records(out)
    for it in present:
        old, new = known.get(it.file), record(it, settings, model)
        if old is None:
            continue  # written by a run killed before it journaled it: same plan, same image
        for field in CHECKED_FIELDS:
            if old.get(field) != new[field]:
                raise ValueError(f"{out / it.file} was made with {field} {old.get(field)!r}, this run asks for "
                                 f"{new[field]!r}: use another --out-dir, or delete the image to redo it")


def write_metadata(out: Path, planned: list[dict]) -> None:
    """metadata.jsonl: one record per image on disk, this plan's records over older ones, sorted."""
    records = read_records(out)
    records.update((r["file"], r) for r in planned)
    rows = sorted((r for f, r in records.items() if (out / f).is_file()),
                  key=lambda r: (r.get("line", 0), r.get("j", 0), r["file"]))
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(out / METADATA, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for journal in out.glob(JOURNAL_GLOB):
        journal.unlink()
