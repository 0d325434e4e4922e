"""Helpers for the app tests: a scripted stand-in for the engine client (widget tests only),
the one real client shared by every test module that needs the model, and small utilities."""

from __future__ import annotations

import atexit
import itertools

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QColor, QImage

FAST = 10_000  # ms: the scripted client answers within milliseconds
FAKE_INFO = {"name": "Scripted 4B on CPU, float32", "source": "", "is_default": False,
             "sees_images": True, "context_length": 2048, "max_context": 8192, "device": "cpu",
             "dtype": "float32", "load_seconds": 0.0, "base_model": False}


class FakeClient(QObject):
    """Answers like EngineClient, from a script: `reply` streamed in 3-character pieces,
    `tokens_per_char` for the counts. Never used by the app itself."""

    loading = Signal(float, str)
    loaded = Signal(dict)
    unloaded = Signal()
    load_failed = Signal(str)
    prefill_progress = Signal(int, int, int)
    token = Signal(int, str)
    finished = Signal(int, dict)
    failed = Signal(int, str, dict)
    summary_ready = Signal(int, str)
    task_progress = Signal(int, float, str)
    document_ready = Signal(int, dict)
    measured = Signal(int, dict)
    counted = Signal(dict)
    models_found = Signal(list)

    def __init__(self, reply: str = "Hello.", context_length: int = 2048) -> None:
        super().__init__()
        self.info = dict(FAKE_INFO, context_length=context_length)
        self.reply = reply
        self.requests: list[dict] = []
        self.summaries: list[dict] = []
        self.loads: list[tuple] = []
        self.contexts: list[int] = []
        self.cancelled_loads = 0
        self.found_rows: list[dict] = []
        self.overflow_next = 0  # > 0: the next request fails as this many tokens too long
        self.document_costs: dict[str, int] = {}  # file name -> tokens (40 otherwise)
        self.prepared: list[tuple] = []
        self.history_tokens_per_char = 0.25
        self._jobs = itertools.count(1)
        self._stopped: set[int] = set()
        self._timers: list[QTimer] = []

    def _later(self, action, ms: int = 2) -> None:
        timer = QTimer(self, singleShot=True, interval=ms)
        timer.timeout.connect(action)
        timer.start()
        self._timers = [t for t in self._timers if t.isActive()] + [timer]

    def load_model(self, source=None, mmproj=None, device="auto", context_length=0) -> None:
        self.loads.append((source, mmproj, device, context_length))
        self._later(lambda: self.loaded.emit(self.info))

    def use_server(self, url: str, model: str, context_length: int = 0) -> None:
        self.loads.append(("server", url, model, context_length))
        self._later(lambda: self.load_failed.emit(f"The server at {url} did not answer."))

    def cancel_load(self) -> None:
        self.cancelled_loads += 1

    def set_context_length(self, context_length: int) -> None:
        self.contexts.append(context_length)

    def generate(self, request: dict) -> int:
        job = next(self._jobs)
        self.requests.append(request)
        if self.overflow_next:
            context, too_many, self.overflow_next = self.info["context_length"], \
                self.overflow_next, 0
            details = {"kind": "overflow", "needed": context + too_many, "available": context,
                       "context_length": context}
            self._later(lambda: self.failed.emit(job, "does not fit", details))
            return job
        pieces = [self.reply[i:i + 3] for i in range(0, len(self.reply), 3)]
        self._later(lambda: self._stream(job, pieces, 0))  # signals come later, as from a thread
        return job

    def _stream(self, job: int, pieces: list[str], i: int) -> None:
        if job in self._stopped:
            self._later(lambda: self.finished.emit(job, {"stop_reason": "cancelled"}))
        elif i < len(pieces):
            self.token.emit(job, pieces[i])
            self._later(lambda: self._stream(job, pieces, i + 1))
        else:
            self.finished.emit(job, {"decode_tokens": len(pieces), "decode_tps": 40.0,
                                     "ttft_s": 0.1, "stop_reason": "stop_token"})

    def summarize(self, request: dict) -> int:
        job = next(self._jobs)
        self.summaries.append(request)
        self._later(lambda: self.summary_ready.emit(job, "They talked about tests."))
        return job

    def stop(self, job=None) -> None:
        self._stopped.add(job)

    def measure(self, key: int, path: str, kind: str, pan_and_scan: bool) -> None:
        from pathlib import Path

        cost = 260 if kind == "image" else self.document_costs.get(Path(path).name, 40)
        self._later(lambda: self.measured.emit(key, {"token_cost": cost, "note": ""}))

    def first_part(self, path: str, budget: int) -> int:
        job = next(self._jobs)
        self.prepared.append(("first_part", path, budget))
        self._later(lambda: self.document_ready.emit(job, {
            "name": "big.txt (lines 1-40 of 400).txt", "text": "the start", "coverage": "x"}))
        return job

    def summarize_document(self, path: str) -> int:
        job = next(self._jobs)
        self.prepared.append(("sections", path))
        self._later(lambda: self.task_progress.emit(job, 0.5, "section 2 of 4 (lines 100-200)"))
        self._later(lambda: self.document_ready.emit(job, {
            "name": "big.txt (summary of lines 1-400 of 400).md", "text": "# Summary",
            "coverage": "lines 1-400 of 400"}), 30)
        return job

    def count(self, request: dict) -> None:
        rate = self.history_tokens_per_char
        per_turn = [int(len(t["text"]) * rate) + 4 for t in request["turns"]]
        result = {"id": request["id"], "context_length": self.info["context_length"],
                  "history": 2 + sum(per_turn), "per_turn": per_turn,
                  "draft": int(len(request["draft"]["text"]) * rate)}
        self._later(lambda: self.counted.emit(result))

    def discover(self, folders, device) -> None:
        self._later(lambda: self.models_found.emit(self.found_rows))

    def shutdown(self) -> None:
        pass


_real_client = None


def real_client():
    """The EngineClient with the bundled 270M loaded (2048-token context), made once per run
    and shared by the modules that need it: loading the model is the slow part."""
    global _real_client
    if _real_client is None:
        from PySide6.QtCore import QEventLoop

        from app.worker import EngineClient

        client = EngineClient()
        failures: list[str] = []
        client.load_failed.connect(failures.append)
        client.load_model(context_length=2048)
        loop = QEventLoop()
        client.loaded.connect(loop.quit)
        client.load_failed.connect(loop.quit)
        QTimer.singleShot(300_000, loop.quit)
        loop.exec()
        assert client.info is not None, f"the bundled model did not load: {failures}"
        atexit.register(client.shutdown)  # a QThread still running at exit aborts the process
        _real_client = client
    return _real_client


def picture(path, width: int = 320, height: int = 200, color: str = "#5b8def") -> str:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    image.save(str(path))
    return str(path)


def send(qtbot, window, text: str) -> None:
    """Type `text`, press Enter and wait for the answer to end (a message with attachments
    goes once they are counted)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window.composer.set_text(text)
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.composer.text() and not window.chats.busy, timeout=FAST)
