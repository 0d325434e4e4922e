"""Sampling, and the timing stats of one answer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sampling:
    """Gemma's defaults: temperature 1.0, top-k 64, top-p 0.95."""

    temperature: float = 1.0
    top_k: int = 64
    top_p: float = 0.95
    min_p: float = 0.0
    seed: int | None = None


def forbid(logits: torch.Tensor, forbidden: torch.Tensor | None) -> torch.Tensor:
    """Never emit image tokens or padding rows (ids the tokenizer cannot decode)."""
    if forbidden is not None:
        logits = logits.index_fill(-1, forbidden, float("-inf"))
    return logits


def choose_token(logits: torch.Tensor, sampling: Sampling | None, generator=None) -> torch.Tensor:
    """Next token id (a 0-d tensor, left on the device) from fp32 logits [vocab]."""
    if sampling is None or sampling.temperature <= 0:
        return logits.argmax()
    logits = logits / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1])).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sampling.min_p > 0:
        probs = probs.masked_fill(probs < sampling.min_p * probs.max(), 0.0)
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above
        sorted_probs = sorted_probs.masked_fill(before >= sampling.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs / probs.sum(), 1, generator=generator)[0]


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
