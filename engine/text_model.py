"""The Gemma 3 text decoder (GEMMA3_REFERENCE.md section 1), state passed in explicitly.

`forward(embeds, positions, cache)` runs one chunk: the caller owns the cache and the absolute
positions, so the same code serves one-shot logits, chunked prefill and one-token decode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import TextConfig
from engine.kv_cache import ChunkMasks, GlobalLayerCache


class RMSNorm(nn.Module):
    """Gemma RMSNorm; `weight` holds the multiplier (1 + w), kept and applied in fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight in fp32, back in x's dtype. torch's own function:
    one fused kernel on CUDA where the spelled-out form is six (it matters in a decode step of
    a thousand kernels), and the same values on the CPU."""
    return F.rms_norm(x.float(), weight.shape, weight, eps).to(x.dtype)


class Rotary:
    """cos/sin tables for one layer type (local or global), computed in fp32 per chunk."""

    def __init__(self, head_dim: int, theta: float, scale: float):
        exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim
        self.inv_freq = 1.0 / (theta**exponents) / scale

    def __call__(self, positions: torch.Tensor, dtype: torch.dtype):
        if self.inv_freq.device != positions.device:  # moved once: a step captured in a CUDA
            self.inv_freq = self.inv_freq.to(positions.device)  # graph may copy nothing
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        angles = torch.cat([freqs, freqs], dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        self.n_heads, self.n_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        self.scale = config.query_pre_attn_scalar**-0.5
        d = config.hidden_size
        q_width, kv_width = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        self.q_proj = nn.Linear(d, q_width, bias=False)
        self.k_proj = nn.Linear(d, kv_width, bias=False)
        self.v_proj = nn.Linear(d, kv_width, bias=False)
        self.o_proj = nn.Linear(q_width, d, bias=False)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.chunk_dtype = None  # the dtype of many-token attention, if not the activations'

    def forward(self, x, rope, cache: GlobalLayerCache | None, start: int, mask):
        n = x.shape[1]
        q = self.q_norm(self.q_proj(x).view(1, n, self.n_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(1, n, self.n_kv, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(1, n, self.n_kv, self.head_dim).transpose(1, 2)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.write(k, v, start)
        if n == 1:  # the heads sharing a KV head become its queries: one small product, no copies
            q = q.reshape(1, self.n_kv, self.n_heads // self.n_kv, self.head_dim)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            return self.o_proj(out.reshape(1, 1, self.n_heads * self.head_dim))
        dtype = self.chunk_dtype or q.dtype
        out = F.scaled_dot_product_attention(
            q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask, scale=self.scale,
            enable_gqa=self.n_kv != self.n_heads,
        ).to(q.dtype)
        return self.o_proj(out.transpose(1, 2).reshape(1, n, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        d, ff = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class DecoderLayer(nn.Module):
    """Sandwich norms: pre and post around both attention and the MLP."""

    def __init__(self, config: TextConfig, sliding: bool):
        super().__init__()
        self.sliding = sliding
        eps = config.rms_norm_eps
        self.self_attn = Attention(config)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps)
        self.pre_feedforward_layernorm = RMSNorm(config.hidden_size, eps)
        self.post_feedforward_layernorm = RMSNorm(config.hidden_size, eps)

    def forward(self, x, rope, cache, start, mask):
        attn = self.self_attn(self.input_layernorm(x), rope, cache, start, mask)
        x = x + self.post_attention_layernorm(attn)
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class TextModel(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        # The table always comes from a checkpoint: no random init (which, on the meta device
        # the loader builds on, imports torch._dynamo: 1.9 s of a 2.6 s load).
        table = torch.empty(config.vocab_size, config.hidden_size)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, _weight=table)
        self.layers = nn.ModuleList(
            DecoderLayer(config, config.is_sliding(i)) for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        hd = config.head_dim
        self.rope_local = Rotary(hd, config.rope_local_base_freq, 1.0)
        self.rope_global = Rotary(hd, config.rope_theta, config.rope_scaling_factor)
        self.one_token = None  # a faster decode step: engine.quant's on the CPU (int8),
        # engine.graph_step's on CUDA (Model.forward_chunk hands it one-token calls with a cache)

    @property
    def embed_scale(self) -> torch.Tensor:
        """sqrt(hidden) rounded to the weights' dtype, as the reference does (25.25 in bf16)."""
        scale = torch.tensor(math.sqrt(self.config.hidden_size), dtype=torch.float32)
        return scale.to(self.embed_tokens.weight.dtype)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """[T] token ids -> [1, T, d] scaled embeddings (image positions are overwritten later)."""
        return (self.embed_tokens(ids) * self.embed_scale.to(ids.device))[None]

    def forward(self, x, start: int, masks: ChunkMasks, caches=None) -> torch.Tensor:
        """x: [1, T, d] embeddings at positions start, start + 1, ...; returns the final-normed
        hidden."""
        dtype = x.dtype
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        rope_local = self.rope_local(positions, dtype)
        rope_global = self.rope_global(positions, dtype)
        for i, layer in enumerate(self.layers):
            rope = rope_local if layer.sliding else rope_global
            mask = masks.local if layer.sliding else masks.global_
            x = layer(x, rope, None if caches is None else caches[i], start, mask)
        return self.norm(x)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output layer: hidden [.., d] -> fp32 logits [.., vocab]."""
        return F.linear(hidden, self.embed_tokens.weight).float()
