"""Reading a Chat Completions stream: server-sent events, usage numbers, finish reasons.

Part of engine.remote; standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from engine.remote_errors import RemoteError, StreamCut, malformed, server_message

MAX_LINE = 8 << 20  # one SSE line; a longer one is not a chat stream
MAX_BODY = 16 << 20  # a whole JSON answer
FINISH_REASONS = {"stop": "stop_token", "length": "max_tokens"}


class Usage(NamedTuple):
    prompt_tokens: int | None  # None when the server did not say (the app's own count stands)
    completion_tokens: int
    source: str  # "server", "tokenizer" or "chunks" (one per streamed piece, the last resort)


@dataclass
class RemoteStats:
    """The numbers of one answer, with the field names of engine.generate.GenerationStats."""

    server: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    decode_tokens: int = 0
    usage_source: str = ""
    ttft_s: float = 0.0  # request sent to the first piece of the answer
    decode_s: float = 0.0  # first piece to the end
    stop_reason: str = ""  # "stop_token", "max_tokens", "cancelled", "error" or the server's own
    pieces: int = 0

    @property
    def decode_tps(self) -> float:
        steps = max(self.decode_tokens - 1, 0)
        return steps / self.decode_s if self.decode_s > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.decode_tokens} tokens, {self.decode_tps:.1f} tok/s, first token after "
            f"{self.ttft_s * 1000:.0f} ms ({self.model} on {self.server}; {self.stop_reason})"
        )

    def as_dict(self) -> dict:
        return {
            "server": self.server, "model": self.model, "prompt_tokens": self.prompt_tokens,
            "decode_tokens": self.decode_tokens, "usage_source": self.usage_source,
            "ttft_s": self.ttft_s, "decode_s": self.decode_s, "decode_tps": self.decode_tps,
            "stop_reason": self.stop_reason,
        }


def answer_pieces(response, stats: RemoteStats) -> Iterator[str]:
    kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if kind == "application/json":  # a server that ignored "stream": the whole answer at once
        events = [response.read(MAX_BODY).decode("utf-8", "replace"), "[DONE]"]
    elif kind == "text/event-stream":
        events = sse_events(response)
    else:
        raise malformed(f"it answered with {kind or 'no content type'}, not an event stream. "
                        "Is the address the server's API (usually ending in /v1)?")
    for data in events:
        if data == "[DONE]":
            return
        text = take_chunk(data, stats)
        if text:
            stats.pieces += 1
            yield text
    if not stats.stop_reason:
        raise StreamCut("the stream ended without [DONE]")


def sse_events(response) -> Iterator[str]:
    """The data of each server-sent event; `error:` events raise the server's message."""
    data: list[str] = []
    while True:
        raw = response.readline(MAX_LINE + 1)
        if len(raw) > MAX_LINE:
            raise malformed("a line of the stream is longer than 8 MiB")
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if not line and data:
            yield "\n".join(data)
            data = []
        elif field == "data":
            data.append(value)
        elif field == "error":  # llama.cpp's server reports some failures this way
            raise RemoteError(f"The server reported an error: {server_message(value.encode())}")
    if data:
        yield "\n".join(data)


def take_chunk(data: str, stats: RemoteStats) -> str:
    """Record usage and finish reason; return the chunk's text."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise malformed(f"an event is not JSON: {data[:80]!r}") from None
    if not isinstance(chunk, dict):
        raise malformed(f"an event is not a JSON object: {data[:80]!r}")
    if "error" in chunk:
        raise RemoteError(f"The server reported an error: {server_message(data.encode())}")
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        stats.prompt_tokens = usage.get("prompt_tokens")
        stats.decode_tokens, stats.usage_source = usage["completion_tokens"], "server"
    choices = chunk.get("choices") or [{}]
    choice = choices[0] if isinstance(choices, list) else None
    if not isinstance(choice, dict):
        raise malformed(f"an event's 'choices' is not a list of objects: {data[:80]!r}")
    if choice.get("finish_reason"):
        stats.stop_reason = FINISH_REASONS.get(choice["finish_reason"], choice["finish_reason"])
    delta = choice.get("delta") or choice.get("message") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
