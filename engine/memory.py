"""Memory estimates: weights, KV cache, vision tower and activations, before anything loads."""

from __future__ import annotations

import torch

from engine.config import ModelConfig, TextConfig, VisionConfig, preset
from engine.kv_cache import ring_size

# Leave this share of free memory to the rest of the system and allocator slack.
HEADROOM = 0.8


def _bytes(dtype) -> int:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return torch.empty(0, dtype=dtype).element_size()


def text_params(c: TextConfig) -> int:
    d, hd, ff = c.hidden_size, c.head_dim, c.intermediate_size
    attn = d * hd * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) + 2 * hd
    layer = attn + 3 * d * ff + 4 * d
    return c.vocab_size * d + c.num_hidden_layers * layer + d


def vision_params(v: VisionConfig, text_hidden: int) -> int:
    h, ff = v.hidden_size, v.intermediate_size
    patches = (v.image_size // v.patch_size) ** 2
    embed = v.num_channels * v.patch_size**2 * h + h + patches * h
    layer = 4 * (h * h + h) + 2 * h * ff + ff + h + 4 * h
    return embed + v.num_hidden_layers * layer + 2 * h + h * text_hidden + h


def total_params(config: ModelConfig) -> int:
    n = text_params(config.text_config)
    if config.vision_config is not None:
        n += vision_params(config.vision_config, config.text_config.hidden_size)
    return n


def kv_cache_bytes(c: TextConfig, context_length: int, dtype, chunk: int) -> int:
    per_layer_token = 2 * c.num_key_value_heads * c.head_dim * _bytes(dtype)
    n_global = sum(1 for i in range(c.num_hidden_layers) if not c.is_sliding(i))
    n_local = c.num_hidden_layers - n_global
    ring = ring_size(c, context_length, chunk)
    return per_layer_token * (n_global * context_length + n_local * ring)


def estimate(config, context_length: int, dtype="bfloat16", images: int = 0,
             chunk: int = 512) -> dict:
    """Bytes for weights, KV cache, vision tower and the activation peak of a prefill chunk."""
    config = preset(config) if isinstance(config, str) else config
    c, size = config.text_config, _bytes(dtype)
    if config.sees_images:
        chunk = max(chunk, config.mm_tokens_per_image)  # a chunk holds a whole image block
    weights = text_params(c) * size
    vision = 0
    if config.vision_config is not None:
        v = config.vision_config
        weights += vision_params(v, c.hidden_size) * size
        patches = (v.image_size // v.patch_size) ** 2
        # One image in flight: hidden states, the MLP's wide activations, q/k/v.
        vision = patches * (v.intermediate_size + 6 * v.hidden_size) * size if images else 0
    kv = kv_cache_bytes(c, context_length, dtype, chunk)
    width = max(c.intermediate_size * 2, c.num_attention_heads * c.head_dim * 3)
    scores = c.num_attention_heads * chunk * context_length * 4  # fp32 attention scores
    activations = chunk * width * size + scores + c.vocab_size * 4
    total = weights + kv + vision + activations
    return {"weights": weights, "kv_cache": kv, "vision": vision, "activations": activations,
            "total": total}


def max_context_that_fits(config, free_bytes: int, dtype="bfloat16", chunk: int = 512,
                          weights_loaded: bool = False) -> int:
    """The largest context (a multiple of 1024, at most the model's maximum) that fits."""
    config = preset(config) if isinstance(config, str) else config
    maximum = config.text_config.max_position_embeddings

    def need(n: int) -> int:
        e = estimate(config, n, dtype, chunk=chunk)
        return e["total"] - (e["weights"] if weights_loaded else 0)

    if need(min(1024, maximum)) > free_bytes:
        return 0
    lo, hi = 1, maximum // 1024
    while lo < hi:  # largest k with need(1024 k) <= free
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid * 1024) <= free_bytes else (lo, mid - 1)
    return min(maximum, lo * 1024) if maximum >= 1024 else maximum


def default_context_length(model) -> int:
    """The model's maximum, capped by what the free memory of its device can hold."""
    from engine.device import free_memory_bytes

    free = int(free_memory_bytes(model.device) * HEADROOM)
    fits = max_context_that_fits(model.config, free, model.dtype, model.default_chunk(),
                                 weights_loaded=True)
    return max(fits, min(4096, model.config.text_config.max_position_embeddings))
