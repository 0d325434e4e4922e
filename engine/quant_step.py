"""One-token decode steps of an int8 text model on the CPU, in a dozen kernel calls a layer.

At one token a layer of TextModel.forward is about a hundred small tensor operations, and their
dispatch and allocation cost more than their arithmetic: a third of a 270M step. This runs the
same arithmetic (tests hold it to TextModel.forward) with q, k, v and gate, up each read as one
matrix, norms, RoPE and GELU in the C library (engine/kernels/step.c), and scratch buffers
reused from step to step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine import kernels
from engine.kernels.build import library


@dataclass
class LayerWeights:
    sliding: bool
    qkv: kernels.Int8Matrix
    o: kernels.Int8Matrix
    gate_up: kernels.Int8Matrix
    down: kernels.Int8Matrix
    norms: dict  # input, post_attention, pre_feedforward, post_feedforward, q, k: RMSNorm modules

    def norm(self, name: str) -> int:
        # Read at each call: a loader assigns the norms' weights after this is built.
        return self.norms[name].weight.data_ptr()


class FusedDecoder:
    """Called by TextModel.forward for one token with caches; returns the final-normed hidden."""

    def __init__(self, text, fused: dict[int, tuple[kernels.Int8Matrix, kernels.Int8Matrix]]):
        config = text.config
        self.text, self.lib = text, library()
        self.eps, self.d = config.rms_norm_eps, config.hidden_size
        self.n_heads, self.n_kv, self.hd = (config.num_attention_heads,
                                            config.num_key_value_heads, config.head_dim)
        self.scale = config.query_pre_attn_scalar**-0.5
        self.layers = [self._weights(layer, *fused[i]) for i, layer in enumerate(text.layers)]
        q_width, kv_width = self.n_heads * self.hd, self.n_kv * self.hd
        self.qkv = torch.empty(q_width + 2 * kv_width)
        self.q, self.k, self.v = (part.data_ptr() for part in
                                  self.qkv.split((q_width, kv_width, kv_width)))
        self.gate_up = torch.empty(2 * config.intermediate_size)
        self.h = torch.empty(self.d)
        self.mlp_mid = torch.empty(config.intermediate_size)
        self.mlp_out = torch.empty(self.d)
        self.attended = torch.empty(q_width)

    @staticmethod
    def _weights(layer, qkv, gate_up) -> LayerWeights:
        attn = layer.self_attn
        norms = {"input": layer.input_layernorm, "post_attention": layer.post_attention_layernorm,
                 "pre_feedforward": layer.pre_feedforward_layernorm,
                 "post_feedforward": layer.post_feedforward_layernorm,
                 "q": attn.q_norm, "k": attn.k_norm}
        return LayerWeights(layer.sliding, qkv, attn.o_proj.matrix, gate_up,
                            layer.mlp.down_proj.matrix, norms)

    def applies(self, x: torch.Tensor, caches) -> bool:
        return caches is not None and x.shape[1] == 1 and x.dtype == torch.float32

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, start: int, masks, caches) -> torch.Tensor:
        x = x.reshape(self.d).contiguous()  # the residual stream, updated in place
        position = torch.tensor([start])
        rope = {True: self._angles(self.text.rope_local, position),
                False: self._angles(self.text.rope_global, position)}
        biases = {True: _additive(masks.local), False: _additive(masks.global_)}
        mask = {key: None if bias is None else bias.data_ptr() for key, bias in biases.items()}
        for weights, cache in zip(self.layers, caches):
            self._attention(weights, x, start, cache, mask[weights.sliding], rope[weights.sliding])
            self._mlp(weights, x)
        return self.text.norm(x.view(1, 1, self.d))

    @staticmethod
    def _angles(rotary, position):
        cos, sin = rotary(position, torch.float32)
        return cos.contiguous().data_ptr(), sin.contiguous().data_ptr(), (cos, sin)

    def _attention(self, w: LayerWeights, x, start, cache, mask, rope) -> None:
        lib, eps, hd = self.lib, self.eps, self.hd
        cos, sin, _keep = rope
        lib.step_rmsnorm(x.data_ptr(), 1, self.d, w.norm("input"), eps,
                         self.h.data_ptr())
        _matvec(w.qkv, self.h, self.qkv)
        lib.step_head_norm_rope(self.q, self.n_heads, hd, w.norm("q"), eps, cos, sin)
        lib.step_head_norm_rope(self.k, self.n_kv, hd, w.norm("k"), eps, cos, sin)
        slot, keys = cache.slot(start)
        stride = cache.k.shape[2]
        lib.step_store(self.k, self.v, cache.k.data_ptr(), cache.v.data_ptr(), self.n_kv, hd,
                       stride, slot)
        failed = lib.step_attention(self.q, cache.k.data_ptr(), cache.v.data_ptr(), self.n_kv,
                                    self.n_heads // self.n_kv, hd, keys, stride, mask,
                                    self.scale, self.attended.data_ptr())
        if failed:
            raise MemoryError("no memory left for the attention scores of one token")
        _matvec(w.o, self.attended, self.mlp_out)
        lib.step_rmsnorm_add(self.mlp_out.data_ptr(), self.d,
                             w.norm("post_attention"), eps, x.data_ptr())

    def _mlp(self, w: LayerWeights, x) -> None:
        lib, eps = self.lib, self.eps
        lib.step_rmsnorm(x.data_ptr(), 1, self.d, w.norm("pre_feedforward"), eps,
                         self.h.data_ptr())
        _matvec(w.gate_up, self.h, self.gate_up)
        lib.step_gelu_mul(self.gate_up.data_ptr(), self.mlp_mid.numel(), self.mlp_mid.data_ptr())
        _matvec(w.down, self.mlp_mid, self.mlp_out)
        lib.step_rmsnorm_add(self.mlp_out.data_ptr(), self.d,
                             w.norm("post_feedforward"), eps, x.data_ptr())


def _matvec(matrix: kernels.Int8Matrix, x: torch.Tensor, out: torch.Tensor) -> None:
    matrix.matvec_into(x.data_ptr(), out.data_ptr())


def _additive(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A boolean mask [1, 1, 1, keys] as 0 / -inf scores to add, once a step for every layer."""
    if mask is None:
        return None
    return torch.zeros(mask.shape[-1]).masked_fill_(~mask.reshape(-1), float("-inf"))
