"""What went wrong talking to a server, in words a person can act on (for engine.remote)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from email.utils import parsedate_to_datetime

MAX_DETAIL = 400  # characters of a server's error text shown to the user
HINTS = {
    401: "Check the API key.",
    403: "Check the API key.",
    404: "Check the server address (it usually ends in /v1) and the model name.",
    413: "The request is too large for this server.",
}


class RemoteError(Exception):
    """A request to the server failed. `partial_text` is the answer received before the fault;
    `retryable` says whether trying again may help (`retry_after`: seconds, when the server
    said); `status` is the HTTP status when the server answered with one."""

    def __init__(self, message: str, partial_text: str = "", retryable: bool = False, *,
                 retry_after: float | None = None, status: int | None = None,
                 malformed: bool = False):
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.malformed = malformed


class StreamCut(Exception):
    """The stream ended before the server said the answer was complete."""


def malformed(what: str) -> RemoteError:
    return RemoteError(f"The server sent something that is not an OpenAI-compatible answer: "
                       f"{what}.", malformed=True)


def connect_error(exc: OSError, host: str, port: int, timeout: float) -> RemoteError:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        text = f"Cannot find the server {host!r}: the name lookup failed ({exc.strerror})."
    elif isinstance(exc, ConnectionRefusedError):
        text = (f"Nothing is listening at {where} (connection refused). Is the server running, "
                "and is this its port?")
    elif isinstance(exc, TimeoutError):
        text = f"The server at {where} did not accept a connection within {timeout:g} s."
    elif isinstance(exc, ssl.SSLError):
        text = f"The secure connection to {where} failed: {exc.reason or exc}."
        return RemoteError(text, retryable=False)
    else:
        text = f"Cannot connect to {where}: {exc.strerror or exc}."
    return RemoteError(text, retryable=True)


def read_error(exc: Exception, midway: bool, timeout: float) -> RemoteError:
    """A fault after the connection was made; `midway`: part of the answer had arrived."""
    if isinstance(exc, TimeoutError):
        if midway:
            text = f"The server stopped sending for {timeout:g} s in the middle of the answer."
        else:
            text = (f"The server did not answer within {timeout:g} s. It may still be reading "
                    "a long prompt: try again, or allow it more time in the server settings.")
    elif midway:
        text = ("The connection to the server was lost in the middle of the answer. The server "
                "may have stopped or restarted; its log says why.")
    else:
        text = ("The server closed the connection without answering. It may have stopped or "
                "restarted; its log says why.")
    return RemoteError(text, retryable=True)


def http_error(status: int, reason: str, body: bytes, retry_after: str | None) -> RemoteError:
    detail = server_message(body)
    if status == 429:
        wait = parse_retry_after(retry_after)
        when = f"try again in {wait:g} s" if wait is not None else "try again shortly"
        text = f"The server is limiting requests (HTTP 429: {detail}); {when}."
        return RemoteError(text, retryable=True, retry_after=wait, status=status)
    text = f"The server answered HTTP {status} {reason}: {detail}"
    hint = HINTS.get(status)
    text = f"{text} {hint}" if hint else text
    retryable = status in (408, 409, 425) or status >= 500
    return RemoteError(text, retryable=retryable, status=status)


def server_message(body: bytes) -> str:
    """The human part of an error body: OpenAI/vLLM {"error": {"message"}}, Ollama
    {"error": "..."}, FastAPI {"detail": ...}, vLLM {"message"}, or the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        found = json.loads(text)
    except ValueError:
        found = text
    for key in ("error", "message", "detail"):
        if isinstance(found, dict) and key in found:
            found = found[key]
    if isinstance(found, dict) and "message" in found:
        found = found["message"]
    if isinstance(found, list):  # FastAPI's validation errors: [{"loc": ..., "msg": ...}]
        found = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                          for item in found)
    if not isinstance(found, str):
        found = json.dumps(found, ensure_ascii=False)
    found = " ".join(found.split())
    if len(found) > MAX_DETAIL:
        found = found[: MAX_DETAIL - 1] + "…"
    return found or "no details given"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None
