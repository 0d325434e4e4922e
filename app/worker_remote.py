"""The worker's server mode: a Gemma 3 on an OpenAI-compatible server answers instead of the
local engine (engine.remote). Runs in the inference thread like the local path and answers with
the same signals. Token counts still come from the bundled Gemma tokenizer, which every Gemma 3
size shares, so the context meter and the document decisions work as they do locally.
"""

from __future__ import annotations

import threading
import time

_tokenizer = None
_tokenizer_lock = threading.Lock()


def gemma_tokenizer():
    """The bundled GGUF's tokenizer, read once."""
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            from engine.checkpoints.gguf_file import GGUFFile
            from engine.default_model import ensure_default_model
            from engine.tokenizer import Tokenizer

            _tokenizer = Tokenizer.from_gguf(GGUFFile(ensure_default_model()))
        return _tokenizer


def connect(request: dict):
    """(backend, info) for the server in `request` ({"url", "model", "context_length"});
    raises ValueError for a bad address or RemoteError when the server cannot be asked."""
    from app.secrets import load_api_key
    from app.worker_prompts import ModelView
    from engine.remote import RemoteBackend

    started = time.perf_counter()
    tokenizer = gemma_tokenizer()
    url = request["url"].strip()
    backend = RemoteBackend(url, request["model"], load_api_key(url),
                            count_tokens=lambda text: len(tokenizer.encode(text)))
    reported = backend.context_length()
    context = reported or request.get("context_length") or 0
    if context <= 0:
        raise ValueError(f"{backend.endpoint.address} does not say how long its context is. "
                         "Enter the context length the server was started with.")
    info = {
        "name": backend.label, "server": backend.endpoint.url, "source": "",
        "is_default": False, "sees_images": True, "context_length": context,
        "max_context": context, "context_from": "server" if reported else "user",
        "device": "server", "dtype": "", "base_model": False,
        "load_seconds": round(time.perf_counter() - started, 2),
        "_model_view": ModelView(tokenizer, True, context, False),
    }
    return backend, info


def messages(request: dict) -> list[dict]:
    """The chat as Chat Completions messages, documents in the same blocks the local engine
    reads; a continued answer stays the last (assistant) message."""
    from app.worker_prompts import alternating, document_text
    from engine.remote import build_messages

    return build_messages(alternating(request["turns"]), request.get("system") or "",
                          document_text=lambda attachment: document_text(attachment["path"])[0])


def stream(backend, request: dict, cancel):
    """The answer's pieces; RemoteError (with partial_text) on a fault."""
    sampling = request.get("sampling") or {"temperature": 0.0, "top_k": None, "top_p": 1.0}
    return backend.stream_chat(
        messages(request), temperature=sampling["temperature"], top_p=sampling["top_p"],
        top_k=sampling.get("top_k"), min_p=sampling.get("min_p"),
        max_tokens=request.get("max_new_tokens"), seed=sampling.get("seed"), cancel=cancel)


def failure_details(exc) -> dict:
    """What the window needs to offer Retry: kind "remote" when trying again may help."""
    return {"kind": "remote" if exc.retryable else "error", "retryable": exc.retryable,
            "retry_after": exc.retry_after, "status": exc.status, "partial_text": exc.partial_text}
