"""The engines the bench command measures, behind one small interface.

Each holds one conversation state: `reset()` empties it, `prefill(ids)` reads a prompt into an
empty state, `decode(n)` appends n greedy tokens (stop tokens ignored, so every engine does the
same work), `mark()` remembers the state at a turn boundary and `turn(ids)` answers a prompt
that extends a marked state, reusing what is cached, up to its first token.
transformers and llama_cpp are imported only here, inside the peers' load().
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch


class OurEngine:
    name = "gemma-desk"

    def __init__(self, device: str = "auto", quantization: str = "auto"):
        self.device, self.quantization = device, quantization

    def load(self, gguf: Path, threads: int, context: int) -> None:
        import engine

        self.model = engine.load(gguf, device=self.device, quantization=self.quantization)
        self.load_path = f"engine.load(quantization='{self.quantization}')"
        self.model.stop_ids = frozenset()  # decode a fixed number of tokens
        self.context = context
        self.session = self.model.new_session(context_length=context)

    def describe(self) -> str:
        scheme = getattr(self.model, "quantization", str(self.model.dtype))
        return f"{self.name} ({scheme}, {self.model.device.type})"

    def reset(self) -> None:
        self.session.truncate(0)

    def prefill(self, ids: list[int]) -> None:
        from engine.device import synchronize

        self.session.prefill(ids)
        synchronize(self.model.device)  # its last logits may still be queued on a GPU

    def decode(self, n: int) -> list[int]:
        return list(self.session.generate_ids(n))

    def mark(self) -> None:
        pass  # the session keeps turn-boundary snapshots itself

    def turn(self, ids: list[int]) -> int:
        self.session.prefill_to(ids)
        return next(self.session.generate_ids(1))


class TransformersEngine:
    name = "transformers"

    def load(self, gguf: Path, threads: int, context: int) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        ).eval()
        self.reset()

    def describe(self) -> str:
        import transformers

        return f"transformers {transformers.__version__} (float32)"

    def reset(self) -> None:
        from transformers import DynamicCache

        self.cache, self.ids, self.logits = DynamicCache(config=self.model.config), [], None
        self.marked = None

    @torch.inference_mode()
    def _feed(self, ids: list[int]) -> None:
        out = self.model(input_ids=torch.tensor([ids]), past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1)
        self.cache, self.logits = out.past_key_values, out.logits[0, -1]
        self.ids = self.ids + ids

    def prefill(self, ids: list[int]) -> None:
        self._feed(ids)

    def decode(self, n: int) -> list[int]:
        tokens = []
        for _ in range(n):
            tokens.append(int(self.logits.argmax()))
            self._feed(tokens[-1:])
        return tokens

    def mark(self) -> None:
        # Its sliding-window layers drop old keys, so a cache cannot be cut back: keep a copy.
        self.marked = (list(self.ids), copy.deepcopy(self.cache), self.logits)

    def restore(self) -> None:
        ids, cache, logits = self.marked
        self.ids, self.cache, self.logits = list(ids), copy.deepcopy(cache), logits

    def turn(self, ids: list[int]) -> int:
        held = len(self.ids)
        if self.ids != ids[:held]:
            self.reset()
            held = 0
        self._feed(ids[held:])
        return int(self.logits.argmax())


class LlamaCppEngine:
    name = "llama.cpp"

    def load(self, gguf: Path, threads: int, context: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(gguf), n_ctx=context, n_threads=threads,
                         n_threads_batch=threads, n_batch=512, verbose=False)

    def describe(self) -> str:
        import llama_cpp

        return f"llama.cpp via llama-cpp-python {llama_cpp.__version__}"

    def reset(self) -> None:
        self.llm.reset()

    def prefill(self, ids: list[int]) -> None:
        self.llm.eval(ids)

    def decode(self, n: int) -> list[int]:
        # generate() evaluates each token after yielding it: one more yield makes n steps.
        tokens = []
        for token in self.llm.generate([], temp=0.0, reset=False):
            if len(tokens) == n:
                break
            tokens.append(token)
        return tokens

    def mark(self) -> None:
        pass  # llama-cpp-python reuses the longest common prefix by itself

    def turn(self, ids: list[int]) -> int:
        return next(self.llm.generate(ids, temp=0.0))


ENGINES = {"gemma-desk": OurEngine, "transformers": TransformersEngine,
           "llama.cpp": LlamaCppEngine}


def installed(name: str) -> bool:
    """Whether a peer's package can be imported (without importing it)."""
    from importlib.util import find_spec

    module = {"transformers": "transformers", "llama.cpp": "llama_cpp"}.get(name)
    return module is None or find_spec(module) is not None
