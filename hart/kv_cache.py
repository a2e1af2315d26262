"""A preallocated key/value cache for scale-by-scale decoding (after gpt-fast: preallocated buffers, no host syncs).

One buffer pair per block, shaped (B, H, S_max, head_dim); the transformer writes the keys and
values of the tokens it runs at ``[start, start + l)`` and attends over ``[0, start + l)``. The
cache is created by the caller and passed in explicitly; nothing is allocated in the decode loop.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, depth: int, batch: int, heads: int, max_len: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape = (batch, heads, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        self.max_len = max_len

    def rows(self, first: int, last: int) -> KVCache:
        """A cache over rows [first, last) of this one, sharing its buffers (writes land here)."""
        view = KVCache.__new__(KVCache)
        view.k = [k[first:last] for k in self.k]
        view.v = [v[first:last] for v in self.v]
        view.max_len = self.max_len
        return view

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, H, l, hd) at [start, start + l); return all keys/values up to there."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked to write up to {end}")
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]
