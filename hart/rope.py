"""2D rotary position embedding of image tokens (RoFormer; HART Sec. 3.2 uses RoPE).

The head dimension is split in two halves, one rotated by the row coordinate and one by the
column coordinate, each with the usual pairing (x_i, x_{i+d/2}) inside its half, so every rotation
is a true rotation (the public HART code pairs x and y frequencies, a known defect: docs/design.md section 3).
Token (i, j) of scale p_k sits at ((i + 0.5) p_K / p_k, (j + 0.5) p_K / p_k): the same place in the
picture has the same position at every scale. Text tokens are not rotated (cos 1, sin 0): the
text encoder has already encoded their order.
"""

from __future__ import annotations

import torch


def image_positions(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(L, 2) row/column coordinates of all tokens of all scales, in final-scale units."""
    last = patch_nums[-1]
    rows = []
    for p in patch_nums:
        c = (torch.arange(p, dtype=torch.float64) + 0.5) * (last / p)
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        rows.append(torch.stack([yy.flatten(), xx.flatten()], dim=1))
    return torch.cat(rows)


def rope_tables(positions_N2: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (N, head_dim) for 2D positions (N, 2)."""
    quarter = head_dim // 4
    freqs = theta ** (-torch.arange(quarter, dtype=torch.float64) / quarter)  # (d/4,)
    angles = [positions_N2[:, a, None] * freqs for a in range(2)]  # 2 x (N, d/4)
    # Half a: [angles_a, angles_a] pairs x_i with x_{i + d/4} inside the half.
    full = torch.cat([torch.cat([ang, ang], dim=1) for ang in angles], dim=1)  # (N, d)
    return full.cos().float(), full.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, N, d) by tables (N, d): each half of d rotates its own pairs."""
    d = x.shape[-1]
    a, b = x[..., : d // 2], x[..., d // 2:]
    rotated = torch.cat([_rotate_half(a), _rotate_half(b)], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)
