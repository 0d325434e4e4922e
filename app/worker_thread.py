"""InferenceWorker: lives in the inference thread and owns the model, its session and caches.

Each slot runs one request to its end and reports through signals; errors become messages a
person can act on, and the worker stays usable after any of them.
"""

from __future__ import annotations

import gc
import logging
import time

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)
PROGRESS_STEP = 0.01  # loading progress is reported in steps of 1%


class InferenceWorker(QObject):
    loading = Signal(float, str)
    loaded = Signal(dict)
    unloaded = Signal()
    load_failed = Signal(str)
    prefill_progress = Signal(int, int, int)
    token = Signal(int, str)
    finished = Signal(int, dict)
    failed = Signal(int, str, dict)
    summary_ready = Signal(int, str)
    task_progress = Signal(int, float, str)  # job, fraction, what is being done
    document_ready = Signal(int, dict)  # job, {"name", "text", "coverage"}

    def __init__(self, closing) -> None:
        super().__init__()
        self.closing = closing
        self.model = None
        self.session = None
        self.remote = None  # engine.remote.RemoteBackend while a server answers instead
        self._server_info: dict = {}
        self._source = None
        self._seconds = 0.0
        self._last_progress = -1.0

    # -- loading -------------------------------------------------------------------------------

    @Slot(dict)
    def load(self, request: dict) -> None:
        from engine.errors import Cancelled

        try:
            self._load(request)
        except Cancelled:
            self._say_what_is_in_use()
        except Exception as exc:  # noqa: BLE001 - every failure must reach the window
            log.exception("model load failed")
            self.load_failed.emit(_load_error_text(request, exc))

    def _load(self, request: dict) -> None:
        import engine
        from engine.checkpoints import open_checkpoint
        from engine.checkpoints.mmproj import read_mmproj

        source = request["source"]
        if source is not None:  # a wrong or broken file fails here, before the model in use
            open_checkpoint(source).require_tokenizer()  # is let go
        if request["mmproj"]:
            read_mmproj(request["mmproj"])
        cancel = request.get("cancel")
        if cancel is not None and cancel.is_set():
            self._say_what_is_in_use()  # stopped, or a newer load asked for, before it began
            return
        self.unload()
        self._last_progress = -1.0
        started = time.perf_counter()
        report = lambda fraction, message: self._progress(fraction, message, cancel)
        model = engine.load(source, device=request["device"], progress=report,
                            mmproj=request["mmproj"])
        self.loading.emit(1.0, "Preparing the context")
        session = model.new_session(request["context_length"])
        self.model, self.session, self._source = model, session, source
        self._seconds = time.perf_counter() - started
        self.loaded.emit(self.info(source, self._seconds))

    def _say_what_is_in_use(self) -> None:
        """After a stopped load the window shows the model kept, or that none is loaded."""
        if self.closing.is_set():
            return
        if self.model is not None:
            self.loaded.emit(self.info(self._source, self._seconds))
        elif self.remote is not None:
            self.loaded.emit(dict(self._server_info))
        else:
            self.unloaded.emit()

    @Slot(dict)
    def use_server(self, request: dict) -> None:
        """Answer with a server from now on; the local model is let go only once the server
        has answered, so a wrong address leaves the model in use as it was."""
        from app.worker_remote import connect
        from engine.remote import RemoteError

        try:
            backend, info = connect(request)
        except (ValueError, RemoteError) as exc:
            self.load_failed.emit(f"The server could not be used. {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - every failure must reach the window
            log.exception("server setup failed")
            self.load_failed.emit(f"The server could not be used: {type(exc).__name__}: {exc}")
            return
        if request["cancel"].is_set():
            return  # another model or server was chosen meanwhile
        self.unload()
        self.remote, self._server_info = backend, dict(info)
        self.loaded.emit(info)

    @Slot(int)
    def resize(self, context_length: int) -> None:
        if self.model is None:
            return
        try:
            self.session = None  # the old cache goes before the new one is allocated
            self.session = self.model.new_session(context_length or None)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory for a huge context
            self.session = self.model.new_session(None)
            self.load_failed.emit(f"A context of {context_length:,} tokens could not be set "
                                  f"up ({exc}); using {self.session.context_length:,}.")
        self.loaded.emit(self.info(self._source, self._seconds))

    def _progress(self, fraction: float, message: str, cancel=None) -> None:
        if self.closing.is_set() or (cancel is not None and cancel.is_set()):
            from engine.errors import Cancelled

            raise Cancelled("The app is closing, or another model was chosen")
        if fraction - self._last_progress >= PROGRESS_STEP or fraction >= 1.0:
            self._last_progress = fraction
            self.loading.emit(fraction, message)

    def unload(self) -> None:
        if self.model is not None or self.remote is not None:
            self.unloaded.emit()
        self.model = self.session = self.remote = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def info(self, source, seconds: float) -> dict:
        from app.worker_prompts import ModelView
        from engine.summarize import prompt_style

        model, session = self.model, self.session
        text = model.config.text_config
        base = prompt_style(model) == "plain"
        return {
            "name": model.describe(), "source": str(source or model.source or ""),
            "is_default": source is None, "sees_images": model.config.sees_images,
            "context_length": session.context_length, "max_context": text.max_position_embeddings,
            "device": model.device.type, "dtype": str(model.dtype).removeprefix("torch."),
            "load_seconds": round(seconds, 2), "base_model": base,
            "_model_view": ModelView(model.tokenizer, model.config.sees_images,
                                     session.context_length, base),
        }

    # -- answering -----------------------------------------------------------------------------

    @Slot(int, dict, object)
    def generate(self, job: int, request: dict, cancel) -> None:
        self._guarded(job, lambda: self._generate(job, request, cancel))

    def _generate(self, job: int, request: dict, cancel) -> None:
        from app.worker_prompts import build_prompt
        from engine.generate import Sampling

        if self.remote is not None:
            self._generate_remote(job, request, cancel)
            return
        session = self._session()
        if cancel.is_set():
            self.finished.emit(job, {"stop_reason": "cancelled"})
            return
        ids, pixels = build_prompt(self.model, request)
        report = lambda done, total: self.prefill_progress.emit(job, done, total)
        session.prefill_to(ids, pixel_values=pixels, cancel=cancel, progress=report,
                           reserve=request.get("reserve", 0))
        sampling = Sampling(**request["sampling"]) if request.get("sampling") else None
        for piece in session.generate(request["max_new_tokens"], sampling, cancel):
            self.token.emit(job, piece)
        self.finished.emit(job, session.last_stats.as_dict())

    def _generate_remote(self, job: int, request: dict, cancel) -> None:
        from app.worker_remote import failure_details, stream
        from engine.remote import RemoteError

        backend = self.remote
        try:
            for piece in stream(backend, request, cancel):
                self.token.emit(job, piece)
        except RemoteError as exc:
            self.failed.emit(job, exc.message, failure_details(exc))
            return
        self.finished.emit(job, backend.last_stats.as_dict())

    @Slot(int, dict, object)
    def summarize(self, job: int, request: dict, cancel) -> None:
        self._guarded(job, lambda: self._summarize(job, request, cancel))

    def _summarize(self, job: int, request: dict, cancel) -> None:
        from app.worker_prompts import summary_prompt
        from engine.errors import Cancelled

        session = self._session()
        answer = min(256, session.context_length // 4)
        ids, plain = summary_prompt(self.model, request, session.context_length - answer - 8)
        read = lambda done, total: self.task_progress.emit(job, done / total, "reading the chat")
        session.prefill_to(ids, cancel=cancel, reserve=answer, progress=read)
        text = ""
        for piece in session.generate(answer, None, cancel):
            text += piece
            if plain and "\n\n" in text.strip():
                break  # a base model's summary is its first paragraph; what follows drifts
        if cancel.is_set():
            raise Cancelled("Summary stopped")
        self.summary_ready.emit(job, text.strip().split("\n\n")[0] if plain else text.strip())

    @Slot(int, str, object)
    def summarize_document(self, job: int, path: str, cancel) -> None:
        self._guarded(job, lambda: self._summarize_document(job, path, cancel))

    def _summarize_document(self, job: int, path: str, cancel) -> None:
        """A long document summarised section by section, then combined (engine.summarize)."""
        from engine.documents import extract
        from engine.summarize import summarize

        session = self._session()
        doc = extract(path)
        report = lambda event: self.task_progress.emit(job, event.fraction, str(event))
        summary = summarize(self.model, doc, context_length=session.context_length,
                            mode="sections", progress=report, cancel=cancel)
        self.document_ready.emit(job, {
            "name": f"{doc.name} (summary of {summary.read}).md", "text": summary.markdown(),
            "coverage": summary.read})

    def _session(self):
        from engine.errors import EngineError

        if self.remote is not None:
            raise EngineError("Summaries are written by a model on this computer. Choose one "
                              "in the model list to summarise while a server answers chats.")
        if self.model is None:
            raise EngineError("No model is loaded. Open a model from the model list, or wait "
                              "until the current one has finished loading.")
        return self.session

    def _guarded(self, job: int, work) -> None:
        """Run `work`, turning each kind of failure into `finished` (stopped) or `failed`."""
        from engine.errors import Cancelled, ContextOverflowError, EngineError, OutOfMemory

        try:
            work()
        except Cancelled:
            stats = self.session.last_stats.as_dict() if self.session and \
                self.session.last_stats else {}
            self.finished.emit(job, {**stats, "stop_reason": "cancelled"})
        except ContextOverflowError as exc:
            self.failed.emit(job, str(exc), {"kind": "overflow", "needed": exc.needed,
                                             "available": exc.available,
                                             "context_length": exc.context_length})
        except OutOfMemory as exc:
            self.failed.emit(job, str(exc), {"kind": "oom"})
        except EngineError as exc:
            self.failed.emit(job, str(exc), {"kind": "error"})
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the thread
            log.exception("generation failed")
            self.failed.emit(job, f"Unexpected error: {type(exc).__name__}: {exc}",
                             {"kind": "error"})


def _load_error_text(request: dict, exc: Exception) -> str:
    what = request["source"] or "the bundled Gemma 3 270M"
    from engine.errors import EngineError, OutOfMemory

    if isinstance(exc, (OutOfMemory, MemoryError)) or type(exc).__name__ == "OutOfMemoryError":
        return f"Not enough memory to load {what}. {exc}"
    if isinstance(exc, EngineError):
        return f"The model could not be loaded. {exc}"
    return f"The model could not be loaded from {what}: {type(exc).__name__}: {exc}"
