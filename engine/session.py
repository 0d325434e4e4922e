"""A conversation's state in the engine: the tokens seen so far and their KV caches.

The next turn prefills only what follows the longest common prefix with what is held.
Rolling back further than a window loses ring-buffer state of the local layers, so the session
keeps a few snapshots of the rings at turn boundaries and replays from the nearest one
(replaying from the start is the fallback when no snapshot is old enough).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from engine.errors import Cancelled, ContextOverflowError, device_memory_guard
from engine.generate import GenerationStats, Sampling, choose_token
from engine.prefill import image_blocks, plan_chunks

MAX_SNAPSHOTS = 3


class Session:
    def __init__(self, model, context_length: int, chunk_size: int):
        self.model = model
        self.context_length = context_length
        self.chunk_size = chunk_size
        self.cache = model.make_cache(context_length, chunk_size)
        self.ids: list[int] = []
        self.image_keys: list[str] = []  # content hash of each image block held, in order
        self._features: list[torch.Tensor] = []  # projected features of each block held
        self._next_logits: torch.Tensor | None = None
        self._snapshots: list[dict] = []
        self._request_start: float | None = None
        self.last_stats: GenerationStats | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    def kv_bytes(self) -> int:
        return self.cache.nbytes()

    def check_fits(self, n_new: int, reserve: int = 0) -> None:
        needed, free = n_new + reserve, self.context_length - self.n_tokens
        if needed > free:
            raise ContextOverflowError(needed, free, self.context_length)

    # -- prefill ---------------------------------------------------------------------------

    def prefill(self, ids, progress=None, cancel=None, pixel_values=None, reserve: int = 0):
        """Append `ids` (with one pixel_values row per image block in them) to the session."""
        ids = [int(i) for i in ids]
        self.check_fits(len(ids), reserve)
        features, keys = self.model.image_features(pixel_values)
        self._check_images(ids, features)
        self._request_start = self._request_start or time.perf_counter()
        started = time.perf_counter()
        with device_memory_guard(self.model.device, "reading the prompt"):
            self._feed(ids, list(features), keys, progress, cancel)
        self._snapshot()
        self.last_stats = GenerationStats(
            prompt_tokens=len(ids), prefill_s=time.perf_counter() - started
        )

    def prefill_to(self, ids, pixel_values=None, progress=None, cancel=None, reserve: int = 0):
        """Make the session hold exactly `ids`, reusing the longest prefix already cached."""
        self._request_start = time.perf_counter()
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("An empty prompt: nothing to answer")
        keys = self.model.image_keys(pixel_values)
        self.truncate(self._common_prefix(ids, keys))  # may restore logits from a snapshot
        if self.n_tokens == len(ids) and self._next_logits is not None:
            self.last_stats = GenerationStats(reused_tokens=self.n_tokens)
            return self.n_tokens
        if self.n_tokens == len(ids):
            self.truncate(len(ids) - 1)  # the last token is fed again for its logits
        common = self.n_tokens  # truncate may step back to an image block's start
        skip = len(image_blocks(ids[:common], self.model.image_token_id))
        rows = None if pixel_values is None else pixel_values[skip:]
        self.prefill(ids[common:], progress, cancel, rows, reserve)
        self.last_stats.reused_tokens = common
        return common

    def _common_prefix(self, ids, keys) -> int:
        n = 0
        limit = min(len(ids), self.n_tokens)
        while n < limit and ids[n] == self.ids[n]:
            n += 1
        for (start, _end), held, new in zip(image_blocks(ids[:n], self.model.image_token_id),
                                            self.image_keys, keys):
            if held != new:  # same placeholder tokens, different picture
                return start
        return n

    def _check_images(self, ids, features) -> None:
        blocks = image_blocks(ids, self.model.image_token_id)
        if len(blocks) != len(features):
            raise ValueError(f"{len(blocks)} image blocks in the prompt, {len(features)} images")
        for (start, end), feature in zip(blocks, features):
            if end - start != feature.shape[0]:
                n = feature.shape[0]
                raise ValueError(f"an image block holds {end - start} tokens, not {n}")

    def _feed(self, ids, features, keys, progress, cancel) -> None:
        model, total = self.model, len(ids)
        blocks = image_blocks(ids, model.image_token_id)
        if ids:
            self._next_logits = None  # stale from here on; an interrupted feed leaves it so
        for a, b in plan_chunks(ids, self.chunk_size, model.image_token_id):
            if cancel is not None and cancel.is_set():
                raise Cancelled("Prefill stopped")
            chunk_blocks = [(s, e) for s, e in blocks if a <= s and e <= b]
            chunk_feats = [features.pop(0) for _ in chunk_blocks]
            hidden = model.forward_chunk(
                ids[a:b], self.n_tokens, chunk_blocks, chunk_feats, a, self.cache
            )
            if b == total:  # only the last position's logits are ever needed
                self._next_logits = model.text.project(hidden[0, -1])
            self.ids.extend(ids[a:b])
            self._features.extend(chunk_feats)
            self.image_keys.extend(keys[: len(chunk_blocks)])
            del keys[: len(chunk_blocks)]
            if progress is not None:
                progress(b, total)

    # -- rollback --------------------------------------------------------------------------

    def truncate(self, n_tokens: int) -> None:
        """Roll back to the first n tokens (never inside an image block)."""
        n = max(0, min(n_tokens, self.n_tokens))
        for start, end in image_blocks(self.ids, self.model.image_token_id):
            if start < n < end:
                n = start
        if n == self.n_tokens:
            return
        kept_blocks = len(image_blocks(self.ids[:n], self.model.image_token_id))
        self._features = self._features[:kept_blocks]
        self.image_keys = self.image_keys[:kept_blocks]
        self._snapshots = [s for s in self._snapshots if s["length"] <= n]
        exact = next((s for s in self._snapshots if s["length"] == n), None)
        self._next_logits = None
        if self.cache.truncate(n):
            self.ids = self.ids[:n]
        else:
            self._replay(n)
        if exact is not None:  # a turn boundary: its next-token logits were kept
            self._next_logits = exact["logits"]

    def _replay(self, n: int) -> None:
        """The rings lost state the window before n needs: restore a snapshot and feed on."""
        ids, features, keys = self.ids[:n], self._features, self.image_keys
        snap = self._snapshots[-1] if self._snapshots else None
        start = snap["length"] if snap else 0
        if snap:
            self.cache.restore(snap)
        else:
            self.cache.truncate(0)
        skip = len(image_blocks(ids[:start], self.model.image_token_id))
        self.ids, self._features, self.image_keys = ids[:start], features[:skip], keys[:skip]
        self._feed(ids[start:], list(features[skip:]), list(keys[skip:]), None, None)

    def _snapshot(self) -> None:
        if self._snapshots and self._snapshots[-1]["length"] == self.n_tokens:
            return
        self._snapshots.append({**self.cache.snapshot(), "logits": self._next_logits})
        del self._snapshots[:-MAX_SNAPSHOTS]

    # -- decoding --------------------------------------------------------------------------

    def generate(self, max_new_tokens: int, sampling: Sampling | None = None,
                 cancel=None) -> Iterator[str]:
        """Yield the answer's text pieces; greedy when `sampling` is None."""
        decoder = self.model.tokenizer.stream_decoder()
        for token in self.generate_ids(max_new_tokens, sampling, cancel):
            text = decoder.push(token)
            if text:
                yield text
        tail = decoder.flush()
        if tail:
            yield tail

    def generate_ids(self, max_new_tokens: int, sampling: Sampling | None = None,
                     cancel=None) -> Iterator[int]:
        """Yield the answer's token ids (stop tokens excluded), appending each to the session."""
        stats = self.last_stats or GenerationStats()
        self.last_stats = stats
        start = self._request_start or time.perf_counter()
        self._request_start = None
        if self._next_logits is None:
            self._refeed_last()
        generator = None
        if sampling is not None and sampling.seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(sampling.seed)
        first_at = None
        stats.stop_reason = "max_tokens"
        try:
            for _ in range(max_new_tokens):
                token = int(choose_token(self._next_logits, sampling, generator,
                                         self.model.forbidden_ids))
                first_at = first_at or time.perf_counter()
                stats.decode_tokens += 1
                if token in self.model.stop_ids:
                    stats.stop_reason = "stop_token"
                    break
                yield token
                if cancel is not None and cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                if self.n_tokens >= self.context_length:
                    stats.stop_reason = "context_full"
                    break
                with device_memory_guard(self.model.device, "writing the answer"):
                    self._step(token)
        finally:
            if first_at is not None:
                stats.ttft_s = first_at - start
                stats.decode_s = time.perf_counter() - first_at
            self._snapshot()

    def _step(self, token: int) -> None:
        hidden = self.model.forward_chunk([token], self.n_tokens, [], [], 0, self.cache)
        self._next_logits = self.model.text.project(hidden[0, -1])
        self.ids.append(token)

    def _refeed_last(self) -> None:
        if not self.ids:
            raise ValueError("The session holds no tokens: prefill a prompt first")
        last = self.ids[-1]
        self.truncate(self.n_tokens - 1)
        self._feed([last], [], [], None, None)
