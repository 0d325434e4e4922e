"""One-token decode steps on CUDA, replayed from CUDA graphs.

Eagerly, a step of the 4B launches a thousand or more small kernels (34 layers of thirty and
more), and at a few microseconds a launch, launching takes longer than reading the 8 GB of
weights does on a modern GPU. So the step is written here with fixed shapes: the token and its
position live in device tensors, keys and values are stored with index_copy_ at a slot
computed on the device, and attention covers a fixed number of cache slots with a mask built on
the device. Such a step can be captured once and then replayed with one launch a token.

Keys are attended in buckets, powers of two from KEY_BUCKET_MIN, one graph per bucket, so a
short chat does not read its whole context's cache every token. The tests also run the step
eagerly on the CPU and hold it to TextModel.forward there.
"""

from __future__ import annotations

import weakref

import torch

DEVICES = {"cuda"}  # the device types that get this step (tests add "cpu" to run it eagerly)
KEY_BUCKET_MIN = 256
COMPILE_BACKEND = "inductor"  # for GraphDecoder(compile=True); tests trace with "eager"
WARMUP_RUNS = 3  # eager runs before a capture, as torch.cuda.graphs asks (lazy inits, cuBLAS)


def attach(text) -> None:
    """Give `text` this step if its device is one that benefits and it has none yet."""
    device = text.embed_tokens.weight.device
    if text.one_token is None and device.type in DEVICES:
        text.one_token = GraphDecoder(text, capture=device.type == "cuda")


class GraphDecoder:
    """Model.forward_chunk hands it one-token calls with a cache, like engine.quant_step's."""

    def __init__(self, text, capture: bool, compile: bool = False):
        """compile: each bucket's step goes through torch.compile before it is captured (fewer,
        fused kernels; minutes of compiling per bucket, so only bench-shape asks for it)."""
        self.text, self.capture, self.compile = text, capture, compile
        weight = text.embed_tokens.weight
        self.vocab, self.window = weight.shape[0], text.config.sliding_window
        self.token = torch.zeros(1, dtype=torch.long, device=weight.device)
        self.position = torch.zeros_like(self.token)
        self.embed_scale = text.embed_scale.to(weight.device)
        self.unavailable = None  # why graphs are off, once a capture failed
        self._cache, self._steps, self._pool = None, {}, None

    def describe(self) -> str:
        kind = "compiled fixed-shape step" if self.compile else "fixed-shape step"
        if not self.capture:
            return kind
        if self.unavailable is None:
            return f"{kind} in CUDA graphs"
        return f"{kind} without graphs (capturing failed: {self.unavailable})"

    @torch.inference_mode()
    def step(self, token: int, start: int, cache) -> torch.Tensor:
        """Hidden state [1, 1, d] of `token` at position `start`, its keys and values stored."""
        if not 0 <= token < self.vocab:  # on CUDA a bad index is a device assert, fatal
            raise ValueError(f"token id {token} is outside the vocabulary ({self.vocab:,})")
        cache.record(start)
        self.token.fill_(token)  # kernels with the values as arguments: no waiting here
        self.position.fill_(start)
        return self._runner(cache, self._bucket(cache, start))().clone()

    @staticmethod
    def _bucket(cache, start: int) -> int:
        keys = KEY_BUCKET_MIN
        while keys <= start:
            keys *= 2
        return min(keys, cache.context_length)

    def _runner(self, cache, keys: int):
        """The step over `keys` slots for this cache: graphs hold the addresses of its buffers,
        so another session's cache gets graphs of its own (the last one's are let go)."""
        if self._cache is None or self._cache() is not cache:
            self._steps.clear()
            self._cache = weakref.ref(cache)
            self._pool = torch.cuda.graph_pool_handle() if self.capture else None
        if keys not in self._steps:
            function = self._step_function(cache, keys)
            if self.compile:
                function = torch.compile(function, fullgraph=True, dynamic=False,
                                         backend=COMPILE_BACKEND)
            self._steps[keys] = self._captured(function) if self.capture else function
        return self._steps[keys]

    def _captured(self, function):
        """The step as a graph; the eager step if capturing fails (the reason is kept for
        the bench to report), so a driver's limits cost speed, never an answer."""
        if self.unavailable is None:
            try:
                return _Graph(function, self._pool)
            except RuntimeError as error:  # torch.OutOfMemoryError among them
                self.unavailable = f"{type(error).__name__}: {error}"
        return function

    def _step_function(self, cache, keys: int):
        text, ring_keys = self.text, min(keys, cache.ring_size)
        slots = torch.arange(keys, device=self.token.device)

        def run() -> torch.Tensor:
            x = (text.embed_tokens(self.token) * self.embed_scale)[None]
            rope = {True: text.rope_local(self.position, x.dtype),
                    False: text.rope_global(self.position, x.dtype)}
            ring_slot = self.position % cache.ring_size
            held = cache.slot_pos[:ring_keys]  # the ring's positions, -1 where empty
            local = (held >= 0) & (held <= self.position) & (held > self.position - self.window)
            masks = {True: _additive(local.view(1, 1, 1, ring_keys), x.dtype),
                     False: _additive((slots <= self.position).view(1, 1, 1, keys), x.dtype)}
            for layer, layer_cache in zip(text.layers, cache.layers):
                sliding = layer.sliding
                writer = _SlotWriter(layer_cache, ring_slot if sliding else self.position,
                                     ring_keys if sliding else keys)
                x = layer(x, rope[sliding], writer, 0, masks[sliding])
            return text.norm(x)

        return run


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as the 0 / -inf bias attention adds: made once a step, not converted
    again by every layer's attention (two kernels each)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, float("-inf"))


class _SlotWriter:
    """A layer cache's `write` for a position held on the device: stores at `slot` and returns
    the first `keys` slots (the mask hides those not yet, or no longer, attended)."""

    def __init__(self, cache, slot: torch.Tensor, keys: int):
        self.cache, self.slot, self.keys = cache, slot, keys

    def write(self, k, v, _start):
        self.cache.k.index_copy_(2, self.slot, k)
        self.cache.v.index_copy_(2, self.slot, v)
        return self.cache.k[:, :, : self.keys], self.cache.v[:, :, : self.keys]


class _Graph:
    """`function` captured once and replayed; its output tensor is rewritten by every replay.

    The warm-up runs store the same keys and values the replay then stores again, so running
    them changes nothing. The first replay is checked against the last eager run."""

    def __init__(self, function, pool):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_RUNS):
                expected = function()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.output = function()
        if not torch.allclose(self(), expected, rtol=1e-2, atol=1e-2):
            raise RuntimeError("the replayed step differs from the eager one")

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.output
