"""One-token decode steps of an int8 text model on the CPU: every layer in one kernel call.

At one token a layer of TextModel.forward is about a hundred small tensor operations, and their
dispatch and allocation cost more than their arithmetic: a third of a 270M step. This runs the
same arithmetic (tests hold it to TextModel.forward) in the C library (kernels/layers.c over
kernels/step.c and q8.c): q, k, v and gate, up read as one matrix each, norms, RoPE, the KV
store, attention and GELU in C, scratch memory reused from step to step.
"""

from __future__ import annotations

import ctypes
import math
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
    _fields_ = [("slot", _I64), ("keys", _I64), ("positions", _PTR), ("oldest", _I64),
                ("cos_a", _PTR), ("sin_a", _PTR)]


class _Shape(ctypes.Structure):
    _fields_ = [("hidden", _I64), ("heads", _I64), ("kv_heads", _I64), ("head_dim", _I64),
                ("intermediate", _I64), ("eps", _F32), ("scale", _F32)]


def _matrix(matrix: kernels.Int8Matrix) -> _Matrix:
    return _Matrix(matrix.q.data_ptr(), matrix.scales.data_ptr())


class FusedDecoder:
    """One token's step from its id to the final-normed hidden state (Model.forward_chunk
    hands it one-token calls with a cache): the embedding row, every layer and the final norm,
    with no more Python around the kernel call than it needs (all of it runs with cold CPU
    caches, after 285 MB of weights have streamed through them)."""

    def __init__(self, text, fused: dict[int, tuple[kernels.Int8Matrix, kernels.Int8Matrix]]):
        config = text.config
        self.text, self.fused, self.lib = text, fused, library()
        self.window = config.sliding_window
        self.embed_scale = math.sqrt(config.hidden_size)  # TextModel.embed_scale in fp32
        self.shape = _Shape(config.hidden_size, config.num_attention_heads,
                            config.num_key_value_heads, config.head_dim,
                            config.intermediate_size, config.rms_norm_eps,
                            config.query_pre_attn_scalar**-0.5)
        self.scratch = torch.empty(self.lib.step_scratch_floats(ctypes.byref(self.shape)))
        sliding = [layer.sliding for layer in text.layers]
        # the first layer of each kind stands for all of them: their caches have one size
        self.first = {kind: sliding.index(kind) for kind in (True, False) if kind in sliding}
        self.angles = {True: _Angles(text.rope_local), False: _Angles(text.rope_global)}
        self._layers = None  # built at the first step: a loader assigns the norms after this
        self._caches, self._pointers = None, None

    def describe(self) -> str:
        return "int8 layers fused in C"

    @staticmethod
    def supports(config, dtype: torch.dtype) -> bool:
        heads_per_kv = config.num_attention_heads // config.num_key_value_heads
        return dtype == torch.float32 and heads_per_kv <= MAX_HEADS_PER_KV

    @torch.inference_mode()
    def step(self, token: int, start: int, cache) -> torch.Tensor:
        """Hidden state [1, 1, d] of `token` at position `start`, its keys and values stored."""
        x = self._embed(token)  # the residual stream, updated in place
        cache.record(start)
        places = {}
        for kind in (True, False):
            if kind not in self.first:
                places[kind] = _Place()
                continue
            slot, keys = cache.layers[self.first[kind]].slot(start)
            cos, sin = self.angles[kind].at(start)
            if kind:  # a ring's slots may hold positions that slid out of the window, or none
                places[kind] = _Place(slot, keys, cache.slot_pos.data_ptr(),
                                      max(0, start - self.window + 1), cos, sin)
            else:
                places[kind] = _Place(slot, keys, None, 0, cos, sin)
        pointers, strides = self._cache_pointers(cache.layers)
        failed = self.lib.step_layers(x.data_ptr(), self._layer_table(), len(self.fused),
                                      ctypes.byref(self.shape), ctypes.byref(places[True]),
                                      ctypes.byref(places[False]), pointers, strides,
                                      self.scratch.data_ptr())
        if failed:
            raise MemoryError("no memory left for the attention scores of one token")
        return self.text.norm(x.view(1, 1, -1))

    def _embed(self, token: int) -> torch.Tensor:
        """The token's row of the int8 table, times sqrt(hidden) (TextModel.embed's values)."""
        table = self.text.embed_tokens.matrix
        try:
            row = table.dense_row(token)
        except ValueError:
            raise ValueError(f"token id {token} is outside the vocabulary "
                             f"({table.rows:,})") from None
        return row.mul_(self.embed_scale)

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


class _Angles:
    """RoPE's cos and sin for blocks of positions, made by the model's own Rotary (so the
    values are the module path's) a block at a time rather than once a token."""

    BLOCK = 256

    def __init__(self, rotary):
        self.rotary, self.first, self.tables = rotary, None, None

    def at(self, position: int) -> tuple[int, int]:
        """Addresses of the cos and sin rows of `position`."""
        if self.first is None or not 0 <= position - self.first < self.BLOCK:
            self.first = position
            positions = torch.arange(position, position + self.BLOCK)
            self.tables = [t.contiguous() for t in self.rotary(positions, torch.float32)]
        row = (position - self.first) * self.tables[0].shape[1] * 4
        return self.tables[0].data_ptr() + row, self.tables[1].data_ptr() + row
