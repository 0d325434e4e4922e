"""A document longer than the context: summarise it in sections, or read its first part.

Nothing is cut silently: either way the document's chip is replaced by a prepared file whose
name says what the model reads ("report.pdf (pages 1-212 of 240).txt", or "report.pdf (summary
of pages 1-240 of 240).md"), and that name stays visible in the chat.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject

from app.attachments import PendingAttachment

MARGIN = 96  # the file's BEGIN/END lines and the note that its content is data, not orders
MIN_FIRST_PART = 256  # below this a "first part" would be a few lines: not worth offering


class DocumentFit(QObject):
    def __init__(self, client, composer, banner, context, parent=None) -> None:
        super().__init__(parent)
        self.client, self.composer, self.banner, self.context = client, composer, banner, context
        self._jobs: dict[int, PendingAttachment] = {}
        self._folder: Path | None = None
        self._shown: int | None = None  # the job whose progress the banner shows
        client.document_ready.connect(self._on_ready)
        client.task_progress.connect(self._on_progress)
        client.failed.connect(self._on_failed)
        client.finished.connect(self._on_stopped)

    def too_long(self, usage) -> PendingAttachment | None:
        """The largest attached document, when it alone leaves no room in the context."""
        documents = [i for i in self.composer.items if i.kind == "document" and i.token_cost]
        if not documents or not usage.context_length:
            return None
        biggest = max(documents, key=lambda i: i.token_cost)
        return biggest if biggest.token_cost + usage.reserve > usage.context_length else None

    def choices(self, item: PendingAttachment, usage) -> list[tuple]:
        room = usage.context_length - usage.used - usage.reserve + item.token_cost - MARGIN
        actions = [("Summarise in sections", "Summarise the whole document part by part, then "
                    "combine the summaries; the chat says what was read",
                    lambda: self.summarise(item))]
        if room >= MIN_FIRST_PART:
            actions.append(("Use the first part", f"Send only as much of the start as fits "
                            f"(about {room:,} tokens); its name says which pages",
                            lambda: self.first_part(item, room)))
        return actions

    def summarise(self, item: PendingAttachment) -> None:
        job = self.client.summarize_document(str(item.path))
        self._jobs[job] = item
        self._show_progress(job, 0.0, f"reading {item.name}")

    def first_part(self, item: PendingAttachment, budget: int) -> None:
        self._jobs[self.client.first_part(str(item.path), budget)] = item

    def _on_progress(self, job: int, fraction: float, text: str) -> None:
        other_message = self.banner.isVisible() and self.banner.kind != "document"
        if job in self._jobs and not other_message:
            self._show_progress(job, fraction, text)

    def _show_progress(self, job: int, fraction: float, text: str) -> None:
        message = f"Summarising <b>{self._jobs[job].name}</b>: {text} ({int(fraction * 100)}%)…"
        if self._shown == job and self.banner.kind == "document" and self.banner.isVisible():
            self.banner.set_text(message)
            return
        self._shown = job
        self.banner.show_message(
            message, "info", "document",
            [("Stop", "Stop summarising; the document stays attached as it is",
              lambda: self.client.stop(job))])

    def _on_ready(self, job: int, result: dict) -> None:
        item = self._jobs.pop(job, None)
        if item is None:
            return
        if "error" in result:
            self.banner.show_message(f"{item.name}: {result['error']}", "error", "document")
            return
        waiting = self.context.send_waiting
        self.composer.remove(item.key)
        self.composer.add_item(PendingAttachment.from_path(self._write(result)))
        self.banner.dismiss("document")
        self.context.send_waiting = waiting  # Send was pressed: it goes once the count fits

    def _on_failed(self, job: int, message: str, details: dict) -> None:
        item = self._jobs.pop(job, None)
        if item is not None:
            self.banner.show_message(f"{item.name} could not be summarised: {message}",
                                     "error", "document")

    def _on_stopped(self, job: int, _stats: dict) -> None:
        item = self._jobs.pop(job, None)  # a summary job "finishes" only when stopped
        if item is not None:
            self.banner.show_message(f"Summarising {item.name} stopped; it is still attached "
                                     "as it is.", "info", "document")

    def _write(self, result: dict) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="gemma-desk-prepared-"))
        name = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", result["name"])[:180]
        path = self._folder / name
        path.write_text(result["text"], encoding="utf-8")
        return path
