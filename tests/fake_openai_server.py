"""A loopback OpenAI-compatible server whose answers each test scripts, for the fault tests.

    with FakeOpenAIServer() as server:
        server.script("/v1/chat/completions", stream(["Hel", "lo"]), drop_after(["Hi"]))
        RemoteBackend(server.url, "gemma") ...

Each request to a path takes the next scripted behaviour (the last one repeats); an unscripted
path answers 404 like a real server. Requests are recorded (method, path, headers, JSON body).
`disconnected` is set when a streaming behaviour sees the client go away.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(self):
        self.routes: dict[str, list] = {}
        self.requests: list[dict] = []
        self.request_seen = threading.Event()
        self.disconnected = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, path: str, *behaviours) -> None:
        self.routes[path] = list(behaviours)

    def next_behaviour(self, path: str):
        queue = self.routes.get(path)
        if not queue:
            return error(404, {"error": f"no route {path}"})
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def __enter__(self) -> FakeOpenAIServer:
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(json.loads(self.rfile.read(length)) if length else None)

    def _serve(self, body) -> None:
        fake = self.server.fake
        fake.requests.append({"method": self.command, "path": self.path,
                              "headers": dict(self.headers), "json": body})
        fake.request_seen.set()
        self.close_connection = True
        fake.next_behaviour(self.path)(self, fake)

    # -- helpers the behaviours use --------------------------------------------------------

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def client_gone(self, wait: float) -> bool:
        readable, _, _ = select.select([self.connection], [], [], wait)
        try:
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


# -- behaviours ---------------------------------------------------------------------------


def chunk(text: str | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body: dict = {"object": "chat.completion.chunk", "model": "fake",
                  "choices": [{"index": 0, "delta": {} if text is None else {"content": text},
                               "finish_reason": finish}]}
    if usage is not None:
        body = {**body, "choices": [], "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def stream(pieces, finish: str | None = "stop", usage: dict | None = None, done: bool = True):
    def run(handler, fake):
        handler.start_stream()
        for piece in pieces:
            handler.send_chunk(chunk(piece))
        if finish:
            handler.send_chunk(chunk(None, finish))
        if usage:
            handler.send_chunk(chunk(usage=usage))
        if done:
            handler.send_chunk(b"data: [DONE]\n\n")
        handler.end_stream()
    return run


def raw(data: bytes, content_type: str = "text/event-stream"):
    """Send `data` as the body, exactly as given."""
    def run(handler, fake):
        handler.start_stream(content_type)
        handler.send_chunk(data)
        handler.end_stream()
    return run


def drop_after(pieces):
    """Stream some pieces, then drop the connection as a dying server would."""
    def run(handler, fake):
        handler.start_stream()
        for piece in pieces:
            handler.send_chunk(chunk(piece))
        handler.connection.shutdown(socket.SHUT_RDWR)
    return run


def hang(pieces, seconds: float, headers: bool = True):
    """Send some pieces (or, without headers, nothing at all), then go quiet."""
    def run(handler, fake):
        if headers:
            handler.start_stream()
            for piece in pieces:
                handler.send_chunk(chunk(piece))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if handler.client_gone(0.02):
                fake.disconnected.set()
                return
    return run


def endless(piece: str = "la ", every: float = 0.01):
    """Keep streaming until the client goes away."""
    def run(handler, fake):
        handler.start_stream()
        try:
            while not handler.client_gone(every):
                handler.send_chunk(chunk(piece))
        except OSError:
            pass
        fake.disconnected.set()
    return run


def error(status: int, body, headers: dict | None = None):
    def run(handler, fake):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return run


def reply(body):
    """A 200 JSON answer (for /v1/models, /props, /api/show, or a non-streamed chat)."""
    return error(200, body)
