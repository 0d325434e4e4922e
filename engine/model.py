"""Model: the text decoder, the optional vision tower, the tokenizer, and their one device."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import torch

from engine import graph_step
from engine.config import ModelConfig
from engine.errors import EngineError
from engine.kv_cache import KVCache, chunk_masks
from engine.prefill import image_blocks
from engine.session import Session
from engine.text_model import TextModel

DEFAULT_CHUNK = {"cpu": 512, "mps": 1024, "cuda": 2048}
IMAGE_FEATURE_CACHE = 16  # images kept encoded, keyed by the hash of their pixels


class Model:
    def __init__(self, config: ModelConfig, text: TextModel, vision=None, tokenizer=None,
                 source: Path | None = None, description: str = ""):
        self.config, self.text, self.vision, self.tokenizer = config, text, vision, tokenizer
        self.source, self.description = source, description
        weight = text.embed_tokens.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.image_token_id = config.image_token_index
        self.forbidden_ids = self._forbidden_ids()  # never emitted
        self.stop_ids = self._stop_ids()
        self._encoded: OrderedDict[str, torch.Tensor] = OrderedDict()
        graph_step.attach(text)  # on CUDA: decode steps replayed from CUDA graphs

    def describe(self) -> str:
        return self.description or (self.source.name if self.source else "Gemma 3")

    # -- sessions --------------------------------------------------------------------------

    def default_chunk(self) -> int:
        return DEFAULT_CHUNK.get(self.device.type, 512)

    def new_session(self, context_length: int | None = None, chunk_size: int | None = None):
        from engine.memory import default_context_length

        maximum = self.config.text_config.max_position_embeddings
        if context_length is None:
            context_length = default_context_length(self)
        if not 0 < context_length <= maximum:
            raise ValueError(f"context_length must be between 1 and {maximum:,}")
        return Session(self, context_length, chunk_size or self.default_chunk())

    def make_cache(self, context_length: int, chunk_size: int) -> KVCache:
        ring_chunk = self.ring_chunk(chunk_size)
        return KVCache(self.config.text_config, context_length, ring_chunk, self.dtype, self.device)

    def ring_chunk(self, chunk_size: int) -> int:
        """The longest chunk a forward may see: an image block is never split across chunks."""
        if self.config.sees_images:
            return max(chunk_size, self.config.mm_tokens_per_image)
        return chunk_size

    # -- forward passes --------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, ids: list[int], pixel_values: torch.Tensor | None = None, *,
               rows: list[int] | None = None) -> torch.Tensor:
        """fp32 logits [len(ids), vocab] of one full causal pass without a cache.

        `rows` picks the positions to project (a 1,500-token pass has 1.5 GB of logits).
        """
        ids = [int(i) for i in ids]
        features, _keys = self.image_features(pixel_values)
        blocks = image_blocks(ids, self.image_token_id)
        if len(blocks) != len(features):
            raise ValueError(f"{len(blocks)} image blocks in ids but {len(features)} images")
        hidden = self.forward_chunk(ids, 0, blocks, list(features), 0, None)[0]
        return self.text.project(hidden if rows is None else hidden[rows])

    @torch.inference_mode()
    def forward_chunk(self, ids, start: int, blocks, features, offset, cache):
        """Hidden states of one chunk at positions start, start + 1, ...; `blocks` are
        [start, end) relative to ids + offset."""
        if self.text.one_token is not None and cache is not None and len(ids) == 1 and not blocks:
            return self.text.one_token.step(int(ids[0]), start, cache)
        ids_t = torch.tensor(ids, device=self.device)
        positions = torch.arange(start, start + len(ids), device=self.device)
        x = self.text.embed(ids_t.masked_fill(ids_t == self.image_token_id, 0))
        q_block = None
        if blocks:
            q_block = torch.full((len(ids),), -1, dtype=torch.long, device=self.device)
            for n, ((a, b), feature) in enumerate(zip(blocks, features)):
                a, b = a - offset, b - offset
                x[0, a:b] = feature.to(x.dtype)  # image features are not embed-scaled
                q_block[a:b] = n
        if cache is None:
            masks = chunk_masks(self.config.text_config, positions, q_block, positions, positions)
            return self.text(x, start, masks)
        masks = cache.masks_for_chunk(start, positions, q_block)
        return self.text(x, start, masks, cache.layers)

    def _stop_ids(self) -> frozenset[int]:
        if self.tokenizer is not None:
            return frozenset(self.tokenizer.stop_ids)
        eos = self.config.text_config.eos_token_id
        return frozenset(eos if isinstance(eos, list) else [eos])

    def _forbidden_ids(self) -> frozenset[int]:
        """Image tokens and the padding rows past the tokenizer's vocabulary are never emitted."""
        vocab = self.config.text_config.vocab_size
        ids = [i for i in (self.config.boi_token_index, self.config.eoi_token_index) if i < vocab]
        if self.tokenizer is not None:
            ids += range(self.tokenizer.vocab_size, vocab)
        return frozenset(ids)

    # -- images ----------------------------------------------------------------------------

    def image_keys(self, pixel_values: torch.Tensor | None) -> list[str]:
        if pixel_values is None:
            return []
        rows = (row.float().cpu().numpy().tobytes() for row in pixel_values)
        return [hashlib.sha256(row).hexdigest() for row in rows]

    @torch.inference_mode()
    def image_features(self, pixel_values: torch.Tensor | None):
        """([256, d] features, content key) of each image; known images are not re-encoded."""
        if pixel_values is None or len(pixel_values) == 0:
            return [], []
        if self.vision is None:
            raise EngineError(
                f"{self.describe()} is a text-only model and cannot see images. "
                "Open a multimodal Gemma 3 (4B, 12B or 27B) to chat about pictures."
            )
        keys = self.image_keys(pixel_values)
        missing = [i for i, key in enumerate(keys) if key not in self._encoded]
        if missing:
            rows = pixel_values[missing].to(self.device, self.vision_dtype)
            for i, feature in zip(missing, self.vision(rows)):
                self._encoded[keys[i]] = feature
        features = [self._encoded[key] for key in keys]
        for key in keys:
            self._encoded.move_to_end(key)
        while len(self._encoded) > IMAGE_FEATURE_CACHE:
            self._encoded.popitem(last=False)
        return features, keys

    @property
    def vision_dtype(self) -> torch.dtype:
        return next(self.vision.parameters()).dtype
