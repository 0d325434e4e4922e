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
    """Positions are Python ints: writing by slice never waits on the device."""

    def __init__(self, shape, dtype, device):
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    def write(self, k, v, start: int):
        """Store a chunk's keys and values from position `start`; returns every key held."""
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def slot(self, position: int) -> tuple[int, int]:
        """(the buffer slot of `position`, how many slots a query there attends): for callers
        that write one token's keys themselves (engine.quant_step)."""
        return position, position + 1


class RingLayerCache(GlobalLayerCache):
    def write(self, k, v, start: int):
        """Until the ring first wraps only its filled slots are returned: a short conversation
        does not attend over (and read) a thousand empty ones."""
        ring_write(self.k, start, k)
        ring_write(self.v, start, v)
        filled = min(start + k.shape[2], self.k.shape[2])
        return self.k[:, :, :filled], self.v[:, :, :filled]

    def slot(self, position: int) -> tuple[int, int]:
        size = self.k.shape[2]
        return position % size, min(position + 1, size)


def ring_write(ring: torch.Tensor, start: int, values: torch.Tensor) -> None:
    """Write `values` into slots start, start + 1, ... (mod the ring's size) along the slot axis:
    dim 2 of [1, kv, slots, head_dim] buffers, dim 0 of slot_pos. At most two slices, as a
    chunk is never longer than the ring."""
    axis = values.dim() - 2 if values.dim() > 1 else 0
    size, n = ring.shape[axis], values.shape[axis]
    first = start % size
    head = min(n, size - first)
    ring.narrow(axis, first, head).copy_(values.narrow(axis, 0, head))
    if head < n:
        ring.narrow(axis, 0, n - head).copy_(values.narrow(axis, head, n - head))


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

    def masks_for_chunk(self, start: int, positions: torch.Tensor, q_block=None) -> ChunkMasks:
        """Record the chunk's ring slots and return its masks (call before the layers write).

        The keys are those the layers' `write` returns: all positions so far on global layers,
        the filled slots on local ones."""
        ring_write(self.slot_pos, start, positions)
        self.length = start + positions.shape[0]
        global_keys = torch.arange(self.length, device=positions.device)
        local_keys = self.slot_pos[: min(self.length, self.ring_size)]
        return chunk_masks(self.config, positions, q_block, global_keys, local_keys)

    def record(self, position: int) -> None:
        """masks_for_chunk's bookkeeping for one token, for callers that mask it themselves
        (engine.quant_step): a Python-int write, no tensors made."""
        self.slot_pos[position % self.ring_size] = position
        self.length = position + 1

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
