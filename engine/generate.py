"""Sampling, and the timing stats of one answer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch


@dataclass
class Sampling:
    """Gemma's defaults: temperature 1.0, top-k 64, top-p 0.95."""

    temperature: float = 1.0
    top_k: int = 64
    top_p: float = 0.95
    min_p: float = 0.0
    seed: int | None = None


def forbid(logits: torch.Tensor, forbidden: frozenset[int]) -> torch.Tensor:
    """Never emit image tokens or padding rows (ids the tokenizer cannot decode)."""
    if forbidden:
        logits = logits.index_fill(-1, _id_tensor(forbidden, logits.device), float("-inf"))
    return logits


@cache
def _id_tensor(ids: frozenset[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(sorted(ids), device=device)


# Tokens this far below the best (after temperature) have under e^-30 of its probability: they
# are dropped before anything sorts, so a step handles a few hundred candidates, not 262,144.
CANDIDATE_WINDOW = 30.0


def choose_token(logits: torch.Tensor, sampling: Sampling | None, generator=None,
                 forbidden: frozenset[int] = frozenset()):
    """Next token id from fp32 logits [vocab], never one of the `forbidden` ids: an int on the
    CPU, a 0-d tensor left on an accelerator's device (no wait for it there).

    Masking copies every logit (0.25 ms a token for 262K on the CPU), so there the forbidden
    ids are masked only when they would matter: greedy picked one, or one is a candidate."""
    if forbidden and logits.device.type != "cpu":
        logits, forbidden = forbid(logits, forbidden), frozenset()
    if sampling is None or sampling.temperature <= 0:
        if logits.device.type != "cpu":
            return logits.argmax()
        token = int(logits.numpy().argmax())  # numpy's argmax: 25 us; torch's: 750 us here
        if token in forbidden:
            token = int(forbid(logits, forbidden).numpy().argmax())
        return token
    ids, values = candidates(logits / sampling.temperature, sampling.top_k)
    if not forbidden.isdisjoint(ids.tolist()):
        ids, values = candidates(forbid(logits, forbidden) / sampling.temperature, sampling.top_k)
    probs = torch.softmax(values, dim=-1)  # sorted, best first
    if sampling.min_p > 0:
        probs = probs.masked_fill(probs < sampling.min_p * probs[0], 0.0)
    if sampling.top_p < 1.0:
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above
        probs = probs.masked_fill(before >= sampling.top_p, 0.0)
    return ids[torch.multinomial(probs / probs.sum(), 1, generator=generator)[0]]


def candidates(scaled: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, scaled logits) of the tokens that can be drawn, best first: within
    CANDIDATE_WINDOW of the best, and the top_k best of those (top_k 0: no limit)."""
    if scaled.device.type == "cpu":
        values = scaled.numpy()
        ids = torch.from_numpy(np.flatnonzero(values >= values.max() - CANDIDATE_WINDOW))
    else:
        ids = torch.nonzero(scaled >= scaled.max() - CANDIDATE_WINDOW).flatten()
    values = scaled[ids]
    if 0 < top_k < len(ids):
        values, order = torch.topk(values, top_k)
    else:
        values, order = values.sort(descending=True)
    return ids[order], values


@dataclass
class GenerationStats:
    prompt_tokens: int = 0  # tokens of the prompt that had to be prefilled
    reused_tokens: int = 0  # tokens of the prompt served from the cache
    prefill_s: float = 0.0
    ttft_s: float = 0.0  # request start to the first answer token
    decode_tokens: int = 0
    decode_s: float = 0.0
    stop_reason: str = ""  # "stop_token", "max_tokens", "context_full", "cancelled"

    @property
    def prefill_tps(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        # The first token comes out of the prefill; the rest are decode steps.
        steps = max(self.decode_tokens - 1, 0)
        return steps / self.decode_s if self.decode_s > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.decode_tokens} tokens, {self.decode_tps:.1f} tok/s, "
            f"first token after {self.ttft_s * 1000:.0f} ms "
            f"(prefilled {self.prompt_tokens}, reused {self.reused_tokens}; {self.stop_reason})"
        )

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens, "reused_tokens": self.reused_tokens,
            "prefill_s": self.prefill_s, "ttft_s": self.ttft_s, "decode_tokens": self.decode_tokens,
            "decode_s": self.decode_s, "prefill_tps": self.prefill_tps,
            "decode_tps": self.decode_tps, "stop_reason": self.stop_reason,
        }
