"""Saving an answer while it streams, so a crash loses at most the last second of it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from app.store_db import StoreError

if TYPE_CHECKING:
    from app.store import Store


class StreamingSaver:
    """Collects the pieces of a streaming answer and writes them to the store at most
    `interval_s` after they arrive (a timer writes them even when no further piece comes), and
    at once on finish, stop or error. Plain Python; call it from any thread.

    Typical use, in the GUI:
        saver = StreamingSaver.start(store, conversation_id)   # commits an empty "streaming" answer
        worker.token -> saver.append(piece)
        worker.finished(stats) -> saver.finish(stats)
        Stop pressed -> saver.stop(stats);  worker.failed(msg) -> saver.fail(msg)
    Pieces that arrive after the answer was closed are ignored.

    A save that fails while the answer streams (disk full...) does not interrupt it: the text is
    kept here, `save_error` tells why, and the next save tries again. finish/stop/fail raise the
    StoreError if the last save fails too; the answer then stays as last saved, marked
    "interrupted" at the next start.
    """

    def __init__(self, store: Store, message_id: str, text: str = "",
                 interval_s: float = 1.0) -> None:
        self.store = store
        self.message_id = message_id
        self.interval_s = interval_s
        self._text = text
        self._saved_text = text
        self._last_save = time.monotonic()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.save_error: StoreError | None = None  # why the last save failed, if it did

    @classmethod
    def start(cls, store: Store, conversation_id: str, interval_s: float = 1.0) -> StreamingSaver:
        """Commit a new, empty model answer with status "streaming" and return its saver."""
        message = store.add_message(conversation_id, "model", "", status="streaming")
        return cls(store, message.id, interval_s=interval_s)

    @property
    def text(self) -> str:
        return self._text

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, piece: str) -> None:
        with self._lock:
            if self._closed or not piece:
                return
            self._text += piece
            wait = self.interval_s - (time.monotonic() - self._last_save)
            if wait <= 0:
                self._save()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write what has arrived so far (the timer calls this)."""
        with self._lock:
            if not self._closed:
                self._save()

    def finish(self, stats: dict | None = None) -> None:
        self._close("complete", stats)

    def stop(self, stats: dict | None = None) -> None:
        """The user pressed Stop: keep the text, mark it "stopped"."""
        self._close("stopped", stats)

    def fail(self, error: str, stats: dict | None = None) -> None:
        """The engine failed: keep the text, mark it "error" with the reason."""
        self._close("error", {**(stats or {}), "error": error})

    def _close(self, status: str, stats: dict | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_timer()
            try:
                self.store.finish_message(self.message_id, status, stats, text=self._text)
            except StoreError as exc:
                self.save_error = exc
                raise
            self._saved_text, self.save_error = self._text, None

    def _save(self) -> None:
        self._cancel_timer()
        if self._text != self._saved_text:
            try:
                self.store.update_message_text(self.message_id, self._text)
                self._saved_text, self.save_error = self._text, None
            except StoreError as exc:
                self.save_error = exc  # the next piece, the timer or the close tries again
        self._last_save = time.monotonic()

    def _cancel_timer(self) -> None:
        # the timer's own flush may be the caller; cancelling a running timer is harmless
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
