"""A Gemma 3 on a server: a streaming OpenAI-compatible Chat Completions client.

Works with vLLM, the llama.cpp server (and llama-cpp-python's) and Ollama. Standard library only
(http.client + json), so talking to a server needs neither torch nor Qt. A client is only ever
built from the user's own settings: nothing leaves the machine unless a server was configured.
Token counting stays ours: the server's usage numbers are taken when it reports them, otherwise
the app's Gemma tokenizer counts the answer. Chats become messages in remote_messages, streams
are read in remote_stream, faults are worded in remote_errors.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from engine.remote_errors import (
    RemoteError,
    StreamCut,
    connect_error,
    http_error,
    malformed,
    read_error,
)
from engine.remote_messages import build_messages, parse_base_url
from engine.remote_stream import FINISH_REASONS, MAX_BODY, RemoteStats, Usage, answer_pieces

__all__ = ["RemoteBackend", "RemoteError", "RemoteStats", "Usage", "build_messages"]

CANCEL_POLL_S = 0.05  # how often a stream checks the Stop button while blocked on the socket
PROBE_TIMEOUT_S = 10.0


class RemoteBackend:
    """One server and one model on it. Connections are not reused: each call opens its own."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *,
                 timeout: float = 300.0, connect_timeout: float = 10.0,
                 count_tokens: Callable[[str], int] | None = None):
        self.endpoint = parse_base_url(base_url)
        if not model or not model.strip():
            raise ValueError("Enter the name of the model the server serves (e.g. gemma3:27b)")
        self.model = model.strip()
        self.api_key = api_key or None
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.count_tokens = count_tokens
        self.last_stats = RemoteStats(server=self.endpoint.url, model=self.model)

    @property
    def label(self) -> str:
        """What the chat shows so that nobody mistakes a server for the local engine."""
        return f"{self.model} on {self.endpoint.address}"

    @property
    def last_usage(self) -> Usage:
        stats = self.last_stats
        return Usage(stats.prompt_tokens, stats.decode_tokens, stats.usage_source)

    # -- chat ------------------------------------------------------------------------------

    def stream_chat(self, messages: list[dict], *, temperature: float = 1.0, top_p: float = 0.95,
                    top_k: int | None = 64, min_p: float | None = None,
                    max_tokens: int | None = None, seed: int | None = None,
                    stop: list[str] | None = None,
                    cancel: threading.Event | None = None) -> Iterator[str]:
        """Yield the answer's text pieces. Stop (`cancel`) ends the stream quietly; a fault
        raises RemoteError with the answer so far in `partial_text`."""
        payload = {"model": self.model, "messages": messages, "stream": True,
                   "stream_options": {"include_usage": True},
                   "temperature": temperature, "top_p": top_p}
        # top_k and min_p are not OpenAI's: vLLM and llama.cpp read them, others ignore them
        extras = {"top_k": top_k or None, "min_p": min_p or None, "max_tokens": max_tokens,
                  "seed": seed, "stop": stop}
        payload.update({key: value for key, value in extras.items() if value is not None})
        if messages and messages[-1].get("role") == "assistant":
            # Continue that answer: vLLM needs asking; llama.cpp and Ollama treat a final
            # assistant message as the start of the answer on their own.
            payload.update(continue_final_message=True, add_generation_prompt=False)
        stats = self.last_stats = RemoteStats(server=self.endpoint.url, model=self.model)
        answer: list[str] = []
        start = time.perf_counter()
        pieces = self._stream(payload, stats, cancel)
        try:
            for piece in pieces:
                if not answer:
                    stats.ttft_s = time.perf_counter() - start
                answer.append(piece)
                yield piece
                if _is_set(cancel):  # pieces already buffered are not worth waiting for
                    stats.stop_reason = "cancelled"
                    break
        except RemoteError as exc:
            stats.stop_reason = "error"
            exc.partial_text = "".join(answer)
            raise
        finally:
            pieces.close()
            if answer:
                stats.decode_s = time.perf_counter() - start - stats.ttft_s
            self._settle_usage(stats, "".join(answer))

    def _stream(self, payload: dict, stats: RemoteStats, cancel) -> Iterator[str]:
        try:
            with self._exchange("POST", self.endpoint.api + "/chat/completions", payload,
                                cancel) as response:
                yield from answer_pieces(response, stats)
        except (OSError, http.client.HTTPException, StreamCut) as exc:
            if not _is_set(cancel):
                raise read_error(exc, stats.pieces > 0, self.timeout) from exc
        if _is_set(cancel) and stats.stop_reason not in FINISH_REASONS.values():
            stats.stop_reason = "cancelled"

    def _settle_usage(self, stats: RemoteStats, answer: str) -> None:
        if stats.usage_source == "server":
            return
        if self.count_tokens is not None:
            stats.decode_tokens, stats.usage_source = self.count_tokens(answer), "tokenizer"
        else:
            stats.decode_tokens, stats.usage_source = stats.pieces, "chunks"

    # -- what the server knows -------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The model names the server offers (GET /v1/models)."""
        entries = self._get_json(self.endpoint.api + "/models").get("data")
        if not isinstance(entries, list):
            raise malformed("its model list has no 'data' array")
        return [entry["id"] for entry in entries if isinstance(entry, dict) and "id" in entry]

    def context_length(self, model: str | None = None) -> int | None:
        """The context the server gives one request, where its API tells; None: ask the user.
        Network faults raise; an endpoint this kind of server lacks just means "not this one"."""
        model = model or self.model
        for probe in (self._vllm_context, self._llama_cpp_context, self._ollama_context):
            try:
                found = probe(model)
            except RemoteError as exc:
                if exc.status is None and not exc.malformed:
                    raise
                continue
            if isinstance(found, int) and not isinstance(found, bool) and found > 0:
                return found
        return None

    def _vllm_context(self, model: str):
        for entry in self._get_json(self.endpoint.api + "/models").get("data") or []:
            if isinstance(entry, dict) and entry.get("id") == model:
                return entry.get("max_model_len")
        return None

    def _llama_cpp_context(self, model: str):
        props = self._get_json(self.endpoint.root + "/props")
        settings = props.get("default_generation_settings")
        if isinstance(settings, dict) and "n_ctx" in settings:
            return settings["n_ctx"]
        return props.get("n_ctx")

    def _ollama_context(self, model: str):
        # /api/ps knows the context of a loaded model; /api/show only a Modelfile's num_ctx. The
        # trained length in model_info is not what Ollama serves by default, so it is not used.
        names = {model, model + ":latest"}
        for entry in self._get_json(self.endpoint.root + "/api/ps").get("models") or []:
            if isinstance(entry, dict) and names & {entry.get("name"), entry.get("model")}:
                return entry.get("context_length")
        shown = self._post_json(self.endpoint.root + "/api/show", {"model": model})
        for line in str(shown.get("parameters") or "").splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "num_ctx" and value.strip().isdigit():
                return int(value)
        return None

    # -- HTTP ------------------------------------------------------------------------------

    def _get_json(self, path: str) -> dict:
        return self._call_json("GET", path, None)

    def _post_json(self, path: str, payload: dict) -> dict:
        return self._call_json("POST", path, payload)

    def _call_json(self, method: str, path: str, payload: dict | None) -> dict:
        try:
            with self._exchange(method, path, payload, None, PROBE_TIMEOUT_S) as response:
                body = response.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise read_error(exc, False, PROBE_TIMEOUT_S) from exc
        try:
            answer = json.loads(body)
        except ValueError:
            raise malformed(f"{path} did not answer with JSON") from None
        if not isinstance(answer, dict):
            raise malformed(f"{path} did not answer with a JSON object")
        return answer

    @contextmanager
    def _exchange(self, method: str, path: str, payload: dict | None, cancel,
                  timeout: float | None = None):
        """One request on a fresh connection; an HTTP error status raises RemoteError."""
        conn = self._connect(timeout or self.timeout)
        sock, response = conn.sock, None
        watcher = _CancelWatcher(cancel, sock) if cancel is not None else None
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, path, body=body, headers=self._headers(body is not None))
            response = conn.getresponse()
            if response.status >= 400:
                raise http_error(response.status, response.reason, response.read(MAX_BODY),
                                 response.getheader("Retry-After"))
            yield response
        finally:
            if watcher is not None:
                watcher.stop()
            _close(sock, response, conn)

    def _connect(self, read_timeout: float) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "https":
            conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=self.connect_timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(ep.host, ep.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise connect_error(exc, ep.host, ep.port, self.connect_timeout) from exc
        conn.sock.settimeout(read_timeout)
        return conn

    def _headers(self, has_body: bool) -> dict:
        headers = {"Accept": "text/event-stream, application/json", "User-Agent": "gemma-desk"}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


# -- sockets ------------------------------------------------------------------------------


class _CancelWatcher:
    """Stop the stream within CANCEL_POLL_S of the Stop button, even while recv() blocks:
    shutting the socket down makes the blocked read return at once."""

    def __init__(self, cancel: threading.Event, sock: socket.socket):
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(cancel, sock),
                                        name="remote-cancel", daemon=True)
        self._thread.start()

    def _watch(self, cancel: threading.Event, sock: socket.socket) -> None:
        while not self._done.wait(CANCEL_POLL_S):
            if cancel.is_set():
                _shutdown(sock)
                return

    def stop(self) -> None:
        self._done.set()


def _shutdown(sock) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _close(sock, response, conn) -> None:
    # Shut down first so the server sees the client leave (and stops generating) right away.
    _shutdown(sock)
    for thing in (response, conn, sock):
        if thing is not None:
            with suppress(OSError):
                thing.close()


def _is_set(cancel) -> bool:
    return cancel is not None and cancel.is_set()
