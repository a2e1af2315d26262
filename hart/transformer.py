"""Scale-wise autoregressive transformer of HART (docs/design.md section 3; VAR Sec. 3, HART Sec. 3.2).

Sequence: [text context (T tokens, left-padded, projected d_text -> D)] + the next-scale inputs of
scales 2..K (``word_embed``: C -> D, plus ``lvl_embed``). Attention is block-causal over scales:
a token sees the valid text and every token of its own and earlier scales. The logits of scale 1
are read at the last text position (left padding makes it position T - 1 for every prompt), those
of scale k >= 2 at the positions of scale k's inputs, so the sequence has T + L - 1 tokens.

Conditioning: a pooled text vector (max over valid projected text tokens) drives adaLN shift,
scale and gate of every block through one shared projection (VAR's ``shared_aln``) plus a learned
per-block offset ``ada_gss``, and an adaLN before the head.

Departures: 2D RoPE on image tokens only (see ``hart.rope``); text padding is masked in attention.

Shapes: B batch, T text tokens, L tokens over all scales, l tokens of one scale, D width,
V vocabulary, C latent channels, H heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hart.config import TransformerConfig
from hart.kv_cache import KVCache
from hart.rope import apply_rope, image_positions, rope_tables

INIT_STD = 0.02


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None, layer: int, start: int) -> torch.Tensor:
        B, n, D = x.shape
        q, k, v = self.qkv(x).view(B, n, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, start, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, n, hd)
        return self.proj(out.transpose(1, 2).reshape(B, n, D))


class Block(nn.Module):
    """Pre-norm block: x + g1 * attn(mod(norm(x))) ; x + g2 * mlp(mod(norm(x)))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        D = cfg.width
        self.norm = nn.RMSNorm(D, eps=cfg.norm_eps, elementwise_affine=False)
        self.attn = SelfAttention(cfg)
        hidden = int(D * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(D, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, D))
        self.ada_gss = nn.Parameter(torch.zeros(1, 1, 6, D))  # per-block offset of the shared adaLN

    def forward(self, x: torch.Tensor, ada_B16D: torch.Tensor, cos, sin, mask, cache, layer, start):
        g1, g2, s1, s2, b1, b2 = (ada_B16D + self.ada_gss).unbind(2)
        x = x + g1 * self.attn(self.norm(x) * (1 + s1) + b1, cos, sin, mask, cache, layer, start)
        return x + g2 * self.mlp(self.norm(x) * (1 + s2) + b2)


class HARTTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        D, K = cfg.width, cfg.num_scales
        self.text_proj = nn.Linear(cfg.text_dim, D)
        self.word_embed = nn.Linear(cfg.latent_channels, D)
        self.lvl_embed = nn.Embedding(K, D)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head_norm = nn.RMSNorm(D, eps=cfg.norm_eps, elementwise_affine=False)
        self.head_ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.head = nn.Linear(D, cfg.vocab_size)
        self.cond_norm = nn.RMSNorm(D, eps=cfg.norm_eps, elementwise_affine=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=INIT_STD)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=INIT_STD)
        for block in self.blocks:  # GPT-2: residual projections scaled by depth
            for lin in (block.attn.proj, block.mlp[2]):
                lin.weight.mul_(1 / math.sqrt(2 * self.config.depth))
        # Start as a plain pre-norm transformer: gates 1, scales and shifts 0.
        D = self.config.width
        self.shared_ada_lin[1].weight.mul_(0.1)
        self.shared_ada_lin[1].bias.view(6, D)[:2] = 1.0
        self.head_ada[1].weight.mul_(0.1)

    # ------------------------------------------------------------------ pieces
    def levels(self, device: torch.device) -> torch.Tensor:
        """Scale index (L,) of each of the L image tokens."""
        return torch.cat([torch.full((p * p,), k, device=device) for k, p in enumerate(self.config.patch_nums)])

    def rope(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (L, hd) of the image tokens of all scales."""
        cfg = self.config
        cos, sin = rope_tables(image_positions(cfg.patch_nums), cfg.head_dim, cfg.rope_theta)
        return cos.to(device), sin.to(device)

    def condition(self, text_BTd: torch.Tensor, text_mask_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text (B, T, D) and the pooled condition (B, D): max over valid tokens."""
        text = self.text_proj(text_BTd)
        pooled = text.masked_fill(~text_mask_BT[..., None], float("-inf")).amax(dim=1)
        return text, pooled

    def embed_scales(self, x_BlC: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Embedded inputs (B, l, D) of the tokens [first, last) of the L image tokens."""
        return self.word_embed(x_BlC) + self.lvl_embed(self.levels(x_BlC.device)[first:last])

    def run_blocks(self, h: torch.Tensor, pooled: torch.Tensor, cos, sin, mask, cache, start) -> torch.Tensor:
        ada = self.shared_ada_lin(pooled).view(-1, 1, 6, self.config.width)
        for i, block in enumerate(self.blocks):
            h = block(h, ada, cos, sin, mask, cache, i, start)
        return h

    def logits(self, h: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Head with adaLN: (B, n, D) -> (B, n, V)."""
        scale, shift = self.head_ada(pooled).view(-1, 1, 2, self.config.width).unbind(2)
        return self.head(self.head_norm(h) * (1 + scale) + shift)

    def diffusion_condition(self, h_BlD: torch.Tensor, codes_BlC: torch.Tensor) -> torch.Tensor:
        """Condition of the residual head: norm(h_last + word_embed(code of the sampled index))."""
        return self.cond_norm(h_BlD + self.word_embed(codes_BlC))

    # ------------------------------------------------------------------ teacher forcing
    def block_causal_mask(self, text_mask_BT: torch.Tensor) -> torch.Tensor:
        """(B, 1, T + L - 1, T + L - 1) bool: a query sees valid text and scales up to its own."""
        B, T = text_mask_BT.shape
        blocks = torch.cat([torch.zeros(T, dtype=torch.long, device=text_mask_BT.device),
                            self.levels(text_mask_BT.device)[1:]])  # text is block 0, scale k >= 2 is block k - 1
        allowed = blocks[None, :] <= blocks[:, None]  # (N, N) key block <= query block
        valid = torch.cat([text_mask_BT, text_mask_BT.new_ones(B, len(blocks) - T)], dim=1)
        mask = allowed[None] & valid[:, None, :]
        return (mask | torch.eye(len(blocks), dtype=torch.bool, device=mask.device))[:, None]

    def forward(self, text_BTd: torch.Tensor, text_mask_BT: torch.Tensor, x_BLC: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced forward: logits (B, L, V) of all scales and last hidden states (B, L, D).

        x_BLC are the next-scale inputs of scales 2..K, (B, L - 1, C) (``teacher_forcing_inputs``).
        """
        T = text_BTd.shape[1]
        text, pooled = self.condition(text_BTd, text_mask_BT)
        h = torch.cat([text, self.embed_scales(x_BLC, 1, self.config.image_tokens)], dim=1)
        cos_L, sin_L = self.rope(h.device)
        cos = torch.cat([torch.ones_like(cos_L[:1]).expand(T, -1), cos_L[1:]])
        sin = torch.cat([torch.zeros_like(sin_L[:1]).expand(T, -1), sin_L[1:]])
        h = self.run_blocks(h, pooled, cos, sin, self.block_causal_mask(text_mask_BT), None, 0)
        h = h[:, T - 1:]  # the last text position predicts scale 1
        return self.logits(h, pooled), h

    # ------------------------------------------------------------------ cached decoding
    def prefill(self, text_BTd: torch.Tensor, text_mask_BT: torch.Tensor, cache: KVCache
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the text once into ``cache``: scale-1 logits (B, 1, V), hidden (B, 1, D), pooled (B, D)."""
        B, T = text_mask_BT.shape
        text, pooled = self.condition(text_BTd, text_mask_BT)
        mask = text_mask_BT[:, None, None, :] | torch.eye(T, dtype=torch.bool, device=text.device)
        ones = text.new_ones(T, self.config.head_dim)
        h = self.run_blocks(text, pooled, ones, torch.zeros_like(ones), mask, cache, 0)[:, -1:]
        return self.logits(h, pooled), h, pooled

    def decode_scale(self, k: int, x_BlC: torch.Tensor, pooled: torch.Tensor, text_mask_BT: torch.Tensor,
                     cache: KVCache, rope: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the inputs of scale k >= 1 (0-based): logits (B, l, V) and hidden states (B, l, D)."""
        pn = self.config.patch_nums
        first = sum(p * p for p in pn[:k])
        last = first + pn[k] * pn[k]
        T = text_mask_BT.shape[1]
        start = T + first - 1  # sequence position of the first token of scale k
        h = self.embed_scales(x_BlC, first, last)
        valid = torch.cat([text_mask_BT, text_mask_BT.new_ones(text_mask_BT.shape[0], last - 1)], dim=1)
        h = self.run_blocks(h, pooled, rope[0][first:last], rope[1][first:last], valid[:, None, None, :],
                            cache, start)
        return self.logits(h, pooled), h
