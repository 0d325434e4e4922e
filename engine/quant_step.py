"""One-token decode steps of an int8 text model on the CPU: every layer in one kernel call.

At one token a layer of TextModel.forward is about a hundred small tensor operations, and their
dispatch and allocation cost more than their arithmetic: a third of a 270M step. This runs the
same arithmetic (tests hold it to TextModel.forward) in the C library (kernels/layers.c over
kernels/step.c and q8.c): q, k, v and gate, up read as one matrix each, norms, RoPE, the KV
store, attention and GELU in C, scratch memory reused from step to step.
"""

from __future__ import annotations

import ctypes
import weakref

import torch

from engine import kernels
from engine.kernels.build import library

_PTR, _I64, _F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
MAX_HEADS_PER_KV = 16  # ATTN_MAX_GROUP in kernels/step.c


class _Matrix(ctypes.Structure):
    _fields_ = [("q", _PTR), ("scales", _PTR)]


class _Layer(ctypes.Structure):
    _fields_ = [("qkv", _Matrix), ("o", _Matrix), ("gate_up", _Matrix), ("down", _Matrix),
                ("input_norm", _PTR), ("post_attention_norm", _PTR),
                ("pre_feedforward_norm", _PTR), ("post_feedforward_norm", _PTR),
                ("q_norm", _PTR), ("k_norm", _PTR), ("sliding", _I64)]


class _Place(ctypes.Structure):
    _fields_ = [("slot", _I64), ("keys", _I64), ("bias", _PTR), ("cos_a", _PTR), ("sin_a", _PTR)]


class _Shape(ctypes.Structure):
    _fields_ = [("hidden", _I64), ("heads", _I64), ("kv_heads", _I64), ("head_dim", _I64),
                ("intermediate", _I64), ("eps", _F32), ("scale", _F32)]


def _matrix(matrix: kernels.Int8Matrix) -> _Matrix:
    return _Matrix(matrix.q.data_ptr(), matrix.scales.data_ptr())


class FusedDecoder:
    """Called by TextModel.forward for one token with caches; returns the final-normed hidden."""

    def __init__(self, text, fused: dict[int, tuple[kernels.Int8Matrix, kernels.Int8Matrix]]):
        config = text.config
        self.text, self.fused, self.lib = text, fused, library()
        self.shape = _Shape(config.hidden_size, config.num_attention_heads,
                            config.num_key_value_heads, config.head_dim,
                            config.intermediate_size, config.rms_norm_eps,
                            config.query_pre_attn_scalar**-0.5)
        self.scratch = torch.empty(self.lib.step_scratch_floats(ctypes.byref(self.shape)))
        sliding = [layer.sliding for layer in text.layers]
        # the first layer of each kind stands for all of them: their caches have one size
        self.first = {kind: sliding.index(kind) for kind in (True, False) if kind in sliding}
        self._layers = None  # built at the first step: a loader assigns the norms after this
        self._caches, self._pointers = None, None

    def applies(self, x: torch.Tensor, caches) -> bool:
        heads_per_kv = self.shape.heads // self.shape.kv_heads
        return (caches is not None and x.shape[1] == 1 and x.dtype == torch.float32
                and heads_per_kv <= MAX_HEADS_PER_KV)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, start: int, masks, caches) -> torch.Tensor:
        x = x.reshape(-1).contiguous()  # the residual stream, updated in place
        position = torch.tensor([start])
        places, keep = {}, []
        for kind, rotary, mask in ((True, self.text.rope_local, masks.local),
                                   (False, self.text.rope_global, masks.global_)):
            if kind not in self.first:
                places[kind] = _Place()
                continue
            cos, sin = (t.contiguous() for t in rotary(position, torch.float32))
            bias = _additive(mask)
            keep += [cos, sin, bias]
            slot, keys = caches[self.first[kind]].slot(start)
            places[kind] = _Place(slot, keys, None if bias is None else bias.data_ptr(),
                                  cos.data_ptr(), sin.data_ptr())
        pointers, strides = self._cache_pointers(caches)
        failed = self.lib.step_layers(x.data_ptr(), self._layer_table(), len(self.fused),
                                      ctypes.byref(self.shape), ctypes.byref(places[True]),
                                      ctypes.byref(places[False]), pointers, strides,
                                      self.scratch.data_ptr())
        if failed:
            raise MemoryError("no memory left for the attention scores of one token")
        return self.text.norm(x.view(1, 1, -1))

    def _layer_table(self):
        if self._layers is None:
            table = (_Layer * len(self.fused))()
            for i, layer in enumerate(self.text.layers):
                attn, qkv, gate_up = layer.self_attn, *self.fused[i]
                table[i] = _Layer(
                    _matrix(qkv), _matrix(attn.o_proj.matrix), _matrix(gate_up),
                    _matrix(layer.mlp.down_proj.matrix),
                    *(norm.weight.data_ptr() for norm in (
                        layer.input_layernorm, layer.post_attention_layernorm,
                        layer.pre_feedforward_layernorm, layer.post_feedforward_layernorm,
                        attn.q_norm, attn.k_norm)),
                    int(layer.sliding))
            self._layers = table
        return self._layers

    def _cache_pointers(self, caches):
        """K and V buffer addresses of a session's caches, made again when another session
        steps (held weakly: a closed session's caches are not kept alive here)."""
        if self._caches is None or self._caches() is not caches[0]:
            addresses = [t.data_ptr() for cache in caches for t in (cache.k, cache.v)]
            self._pointers = ((_PTR * len(addresses))(*addresses),
                              (_I64 * len(caches))(*(cache.k.shape[2] for cache in caches)))
            self._caches = weakref.ref(caches[0])
        return self._pointers


def _additive(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A boolean mask [1, 1, 1, keys] as 0 / -inf scores to add, once a step for every layer."""
    if mask is None:
        return None
    return torch.zeros(mask.shape[-1]).masked_fill_(~mask.reshape(-1), float("-inf"))
