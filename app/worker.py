"""The one long-lived inference thread, and the GUI's handle on it.

`EngineClient` lives in the GUI thread. It owns a QThread in which `InferenceWorker` holds the
model, its session and caches; requests travel as queued signals, results come back as queued
signals. Stop sets a per-request threading.Event that the engine checks between decode steps and
prefill chunks, so it works while the worker thread is busy. Token counts, attachment checks and
the model scan run on a small helper thread instead, so they answer even during an answer.

Only this module and its helpers (app/worker_*.py) import the engine; the rest of app/ sees
plain data: dicts, strings and numbers.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, QThread, Signal

from app.worker_thread import InferenceWorker

log = logging.getLogger(__name__)

__all__ = ["EngineClient", "InferenceWorker"]


class EngineClient(QObject):
    loading = Signal(float, str)  # fraction, message
    loaded = Signal(dict)  # model info (see InferenceWorker.info)
    unloaded = Signal()  # the model in use was let go (a new one is being loaded)
    load_failed = Signal(str)
    prefill_progress = Signal(int, int, int)  # job, done, total
    token = Signal(int, str)  # job, piece of text
    finished = Signal(int, dict)  # job, stats (GenerationStats.as_dict)
    failed = Signal(int, str, dict)  # job, message, {"kind": "overflow"|"oom"|"error", ...}
    summary_ready = Signal(int, str)  # job, summary text
    task_progress = Signal(int, float, str)  # job, fraction, what is being done
    document_ready = Signal(int, dict)  # job, {"name", "text", "coverage"} or {"error"}
    measured = Signal(int, dict)  # attachment key, {"token_cost", "error", "page_count", ...}
    counted = Signal(dict)  # token counts of a chat and draft (see Counter.count)
    models_found = Signal(list)  # [dict] for the model panel

    _load = Signal(dict)
    _use_server = Signal(dict)
    _resize = Signal(int)
    _generate = Signal(int, dict, object)
    _summarize = Signal(int, dict, object)
    _summarize_document = Signal(int, str, object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.info: dict | None = None
        self._jobs = itertools.count(1)
        self._cancels: dict[int, threading.Event] = {}
        self._closing = threading.Event()
        self._load_cancel = threading.Event()
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gemma-desk-count")
        self._view = None  # the loaded model's worker_prompts.ModelView
        self._counter = None  # made on the helper thread: importing the engine takes a while
        self.thread = QThread()
        self.thread.setObjectName("gemma-desk-inference")
        self.worker = InferenceWorker(self._closing)
        self.worker.moveToThread(self.thread)
        self._load.connect(self.worker.load)
        self._use_server.connect(self.worker.use_server)
        self._resize.connect(self.worker.resize)
        self._generate.connect(self.worker.generate)
        self._summarize.connect(self.worker.summarize)
        self._summarize_document.connect(self.worker.summarize_document)
        self.worker.loading.connect(self.loading)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.unloaded.connect(self._on_unloaded)
        self.worker.load_failed.connect(self.load_failed)
        self.worker.prefill_progress.connect(self.prefill_progress)
        self.worker.token.connect(self.token)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.summary_ready.connect(self._on_summary)
        self.worker.task_progress.connect(self.task_progress)
        self.worker.document_ready.connect(self._on_document)
        self.thread.start()

    # -- requests ----------------------------------------------------------------------------

    def load_model(self, source: str | None = None, mmproj: str | None = None,
                   device: str = "auto", context_length: int = 0) -> None:
        """Load a model (None: the bundled 270M); a load still in progress is abandoned."""
        self._load_cancel.set()
        self._load_cancel = threading.Event()
        self._load.emit({"source": source or None, "mmproj": mmproj or None, "device": device,
                         "context_length": context_length or None, "cancel": self._load_cancel})

    def cancel_load(self) -> None:
        """Stop the model being loaded; the worker then says what is in use (`loaded` for a
        model kept, `unloaded` when the old one was already let go)."""
        self._load_cancel.set()

    def use_server(self, url: str, model: str, context_length: int = 0) -> None:
        """Answer with `model` on the OpenAI-compatible server at `url` (its API key comes from
        app.secrets); `context_length` counts when the server does not report its own. Answers
        `loaded` (info["server"] is the address) or `load_failed`."""
        self._load_cancel.set()
        self._load_cancel = threading.Event()
        self._use_server.emit({"url": url, "model": model, "context_length": context_length,
                               "cancel": self._load_cancel})

    def set_context_length(self, context_length: int) -> None:
        """A new, empty session of this length (0: the largest that fits); answers `loaded`."""
        self._resize.emit(context_length)

    def generate(self, request: dict) -> int:
        """Answer the chat in `request` (see worker_prompts.build_prompt); returns the job id."""
        job = self._new_job()
        self._generate.emit(job, request, self._cancels[job])
        return job

    def summarize(self, request: dict) -> int:
        job = self._new_job()
        self._summarize.emit(job, request, self._cancels[job])
        return job

    def summarize_document(self, path: str) -> int:
        """Summarise a document too long for the context, in sections; answers with
        `task_progress` while it works and `document_ready` (or `failed`) at the end."""
        job = self._new_job()
        self._summarize_document.emit(job, path, self._cancels[job])
        return job

    def first_part(self, path: str, budget: int) -> int:
        """The start of a document that fits in `budget` tokens; answers with
        `document_ready(job, {"name", "text", "coverage"})` (or {"error"})."""
        job, view = next(self._jobs), self._view
        self._submit(lambda: self.document_ready.emit(
            job, self._counting().first_part(view, path, budget)),
            lambda problem: self.document_ready.emit(job, {"error": problem}))
        return job

    def stop(self, job: int | None = None) -> None:
        """Stop one job (or every unfinished one); what was written so far is kept."""
        for number, event in list(self._cancels.items()):
            if job is None or number == job:
                event.set()

    def measure(self, key: int, path: str, kind: str, pan_and_scan: bool) -> None:
        """Check an attachment and count its tokens; answers with `measured(key, result)`."""
        view = self._view
        self._submit(lambda: self.measured.emit(
            key, self._counting().measure(view, path, kind, pan_and_scan)),
            lambda problem: self.measured.emit(key, {"error": f"It could not be read: {problem}"}))

    def count(self, request: dict) -> None:
        """Count the tokens of a chat and a draft; answers with `counted(result)`."""
        view = self._view
        self._submit(lambda: self.counted.emit(
            self._counting().count(view, request)))

    def discover(self, folders: list[str], device: str) -> None:
        from app.worker_models import scan

        self._submit(lambda: self.models_found.emit(scan(folders, device)))

    def shutdown(self) -> None:
        """Stop everything and wait for the threads (a model being loaded stops at its next
        tensor)."""
        self._closing.set()
        self.stop()
        self._helper.shutdown(wait=True, cancel_futures=True)
        self.thread.quit()
        self.thread.wait()

    # -- plumbing ----------------------------------------------------------------------------

    def _new_job(self) -> int:
        job = next(self._jobs)
        self._cancels[job] = threading.Event()
        return job

    def _counting(self):
        if self._counter is None:
            from app.worker_prompts import Counter

            self._counter = Counter()
        return self._counter

    def _submit(self, task, failed=None) -> None:
        """Run `task` on the helper thread; `failed(problem)` answers in its place if it
        raises, so that no chip waits forever for a count."""
        if not self._closing.is_set():  # a window's last timers may fire after shutdown
            self._helper.submit(self._run, task, failed)

    def _run(self, task, failed) -> None:
        if self._closing.is_set():
            return
        try:
            task()
        except Exception as exc:  # noqa: BLE001 - the pool would drop it without a word
            if self._closing.is_set():
                return  # the client went away while this ran: nobody to tell
            log.exception("helper task failed")
            if failed is not None:
                failed(f"{type(exc).__name__}: {exc}")

    def _on_loaded(self, info: dict) -> None:
        self._view = info.pop("_model_view")
        self.info = info
        self.loaded.emit(info)

    def _on_unloaded(self) -> None:
        self.info = self._view = None
        self.unloaded.emit()

    def _on_finished(self, job: int, stats: dict) -> None:
        self._cancels.pop(job, None)
        self.finished.emit(job, stats)

    def _on_failed(self, job: int, message: str, details: dict) -> None:
        self._cancels.pop(job, None)
        self.failed.emit(job, message, details)

    def _on_summary(self, job: int, text: str) -> None:
        self._cancels.pop(job, None)
        self.summary_ready.emit(job, text)

    def _on_document(self, job: int, result: dict) -> None:
        self._cancels.pop(job, None)
        self.document_ready.emit(job, result)
