"""KV caches: a full buffer for global layers, a ring buffer for sliding-window layers.

Global layers keep every position (preallocated to the session's context length, written by
index). Local layers only ever look back `window` tokens, so they keep `window + chunk` slots:
a chunk is written first and then attended, and nothing a query of the chunk needs is
overwritten. Absolute positions live outside the rings (`slot_pos`), never derived from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.config import TextConfig


@dataclass
class ChunkMasks:
    """Boolean attention masks [1, 1, T, S] (True = may attend); None means "attend to all"."""

    local: torch.Tensor | None
    global_: torch.Tensor | None


def attention_mask(q_pos, k_pos, window=None, q_block=None, k_block=None) -> torch.Tensor:
    """Causal (q - window < k <= q on local layers), plus both ways inside one image block.

    Positions of -1 mark empty cache slots. Blocks are ids >= 0 for the tokens of one image.
    """
    allowed = k_pos[None, :] <= q_pos[:, None]
    if q_block is not None:
        same_image = (q_block[:, None] == k_block[None, :]) & (q_block[:, None] >= 0)
        allowed = allowed | same_image
    allowed = allowed & (k_pos[None, :] >= 0)
    if window is not None:
        allowed = allowed & (k_pos[None, :] > q_pos[:, None] - window)
    return allowed[None, None]


def chunk_masks(config: TextConfig, q_pos, q_block, global_keys, local_keys) -> ChunkMasks:
    """Masks for one chunk; keys of the chunk itself get its image-block ids."""

    def blocks_of(k_pos):
        if q_block is None:
            return None
        start, n = int(q_pos[0]), q_pos.shape[0]
        inside = (k_pos >= start) & (k_pos < start + n)
        return torch.where(inside, q_block[(k_pos - start).clamp(0, n - 1)], -1)

    def build(k_pos, window):
        if q_block is None and window is None and q_pos.shape[0] == 1:
            return None  # one new token at the end of a global cache sees everything
        return attention_mask(q_pos, k_pos, window, q_block, blocks_of(k_pos))

    local = build(local_keys, config.sliding_window)
    return ChunkMasks(local=local, global_=build(global_keys, None))


class GlobalLayerCache:
    def __init__(self, shape, dtype, device):
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def write(self, k, v, positions):
        start, end = int(positions[0]), int(positions[-1]) + 1
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class RingLayerCache(GlobalLayerCache):
    def write(self, k, v, positions):
        slots = positions % self.k.shape[2]
        self.k.index_copy_(2, slots, k)
        self.v.index_copy_(2, slots, v)
        return self.k, self.v


class KVCache:
    """The caches of every layer of one session, and the absolute positions they hold."""

    def __init__(self, config: TextConfig, context_length: int, chunk: int, dtype, device):
        self.config, self.context_length = config, context_length
        self.ring_size = ring_size(config, context_length, chunk)
        kv = (1, config.num_key_value_heads)
        self.layers = [
            RingLayerCache((*kv, self.ring_size, config.head_dim), dtype, device)
            if config.is_sliding(i)
            else GlobalLayerCache((*kv, context_length, config.head_dim), dtype, device)
            for i in range(config.num_hidden_layers)
        ]
        self.slot_pos = torch.full((self.ring_size,), -1, dtype=torch.long, device=device)
        self.length = 0  # tokens held; positions 0 .. length - 1

    def masks_for_chunk(self, positions: torch.Tensor, q_block=None) -> ChunkMasks:
        """Record the chunk's ring slots and return its masks (call before the layers write)."""
        self.slot_pos[positions % self.ring_size] = positions
        self.length = int(positions[-1]) + 1
        global_keys = torch.arange(self.length, device=positions.device)
        return chunk_masks(self.config, positions, q_block, global_keys, self.slot_pos)

    def truncate(self, n: int) -> bool:
        """Forget positions >= n; False if the rings no longer hold the window before n."""
        self.slot_pos[self.slot_pos >= n] = -1
        self.length = n
        needed = max(0, n - self.config.sliding_window + 1)
        held = int((self.slot_pos >= needed).sum())
        return held == n - needed

    def snapshot(self) -> dict:
        """A copy of the ring state (global buffers are never overwritten, so not copied)."""
        rings = [(c.k.clone(), c.v.clone()) for c in self.layers if isinstance(c, RingLayerCache)]
        return {"length": self.length, "slot_pos": self.slot_pos.clone(), "rings": rings}

    def restore(self, snap: dict) -> None:
        self.length = snap["length"]
        self.slot_pos.copy_(snap["slot_pos"])
        rings = iter(snap["rings"])
        for cache in self.layers:
            if isinstance(cache, RingLayerCache):
                k, v = next(rings)
                cache.k.copy_(k)
                cache.v.copy_(v)

    def nbytes(self) -> int:
        return sum(c.k.nbytes + c.v.nbytes for c in self.layers)


def ring_size(config: TextConfig, context_length: int, chunk: int) -> int:
    return min(context_length, config.sliding_window + chunk)
