"""Sending, streaming, stopping, and the message actions: between the store, the view and the
engine client.

The user's message is committed to the store before the engine sees it; the answer is committed
empty ("streaming") before its first token and saved at least once a second while it streams
(StreamingSaver), so a crash loses nothing that was on screen. The view is repainted at most
~30 times a second however fast tokens come.
"""

from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from app.attachments import PendingAttachment
from app.conversation import Conversation, Message
from app.store import StreamingSaver

REPAINT_MS = 33  # ~30 repaints a second while an answer streams...
REPAINT_SHARE = 3  # ...but at most a third of the GUI thread's time goes to laying out the answer


class ChatController(QObject):
    busy_changed = Signal(bool)
    chats_changed = Signal()  # a chat was created, renamed by its first message, or updated
    conversation_opened = Signal()
    error = Signal(str, str)  # message, kind ("oom", "error", "attachment", ...)
    overflow = Signal(dict)  # the worker found the prompt too long: {"needed", "available", ...}
    editing = Signal(bool)  # a sent message is (no longer) being edited in the composer

    def __init__(self, store, client, chat_model, composer, settings, parent=None) -> None:
        super().__init__(parent)
        self.store, self.client, self.chat, self.composer = store, client, chat_model, composer
        self.settings = settings
        self.conversation: Conversation | None = None
        self.job: int | None = None
        self.saver: StreamingSaver | None = None
        self.editing_id: str | None = None
        self._draft: tuple[str, list] | None = None  # what the composer held before an edit
        self._progress_note = ""
        self._warned = False  # the user was told that this answer is not being saved
        self.render_cost = lambda: 0.0  # seconds the last layout of the answer took
        self._flush_timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._flush_timer.timeout.connect(self.flush)
        client.token.connect(self._on_token)
        client.prefill_progress.connect(self._on_prefill)
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)

    @property
    def busy(self) -> bool:
        return self.job is not None

    # -- chats ---------------------------------------------------------------------------------

    def open(self, conversation_id: str) -> None:
        self.cancel_edit()
        self.conversation = self.store.get_conversation(conversation_id)
        self.chat.set_conversation(self.conversation)
        self.conversation_opened.emit()

    def new_chat(self) -> None:
        """An empty chat; it is stored when its first message is sent."""
        self.cancel_edit()
        self.conversation = None
        self.chat.set_conversation(None)
        self.conversation_opened.emit()

    def start_chat(self, system_prompt: str, title: str = "") -> Conversation:
        self.conversation = self.store.create_conversation(title, system_prompt)
        self.chat.set_conversation(self.conversation)
        self.chats_changed.emit()
        self.conversation_opened.emit()
        return self.conversation

    def _ensure_conversation(self) -> Conversation:
        if self.conversation is None:
            self.start_chat(self.settings.system_prompt)
        return self.conversation

    # -- sending -------------------------------------------------------------------------------

    def send(self, text: str, items: list[PendingAttachment]) -> bool:
        """Store the message and ask for an answer; False (composer untouched) if it cannot go."""
        if self.busy:
            return False
        try:
            attachments = [self._store_file(i) for i in items if not i.error]
        except OSError as exc:
            self.error.emit(f"An attachment could not be saved: {exc}", "attachment")
            return False
        try:
            conversation = self._ensure_conversation()
            message = self.store.add_message(conversation.id, "user", text, attachments)
        except OSError as exc:  # e.g. a full disk: the message stays in the composer
            self.error.emit(f"Your message could not be saved, so it was not sent. {exc}",
                            "store")
            return False
        if self.editing_id is not None:
            self._drop_from(self.editing_id, keep=message.id)  # only now that the new one is safe
        self.chat.append(message)
        self.composer.clear()
        if self.editing_id is not None:
            self.editing_id = None
            self._restore_draft()
            self.editing.emit(False)
        self.chats_changed.emit()
        self.answer()
        return True

    def _store_file(self, item: PendingAttachment):
        return self.store.add_attachment_file(
            item.path, item.name, item.kind, token_cost=item.token_cost,
            extracted_text=item.extracted_text, page_count=item.page_count)

    def answer(self, continuing: Message | None = None) -> None:
        """Ask for the next answer (or the rest of `continuing`, an answer cut short)."""
        conversation = self._ensure_conversation()
        history = self.chat.messages[self.chat.context_start():]
        if continuing is not None:
            self.saver = StreamingSaver(self.store, continuing.id, text=continuing.text)
            self.chat.finish(continuing.id, "streaming", continuing.stats)
        else:
            try:
                self.saver = StreamingSaver.start(self.store, conversation.id)
            except OSError as exc:
                self.error.emit(f"The answer could not be started: {exc}", "store")
                return
            self.chat.append(self.store.get_message(self.saver.message_id))
        self.job = self.client.generate(self.request(history, continuing is not None))
        waiting = self.client.info is None
        self._progress_note = "Waiting for the model to load…" if waiting else "Reading…"
        self.flush()
        self.busy_changed.emit(True)

    def request(self, messages: list[Message], continue_last: bool = False) -> dict:
        s = self.settings
        context = (self.client.info or {}).get("context_length", 0)
        return {
            "turns": [turn(m) for m in messages],
            "system": self.conversation.system_prompt if self.conversation else "",
            "pan_and_scan": s.pan_and_scan, "continue_last": continue_last,
            "max_new_tokens": s.max_answer_tokens, "sampling": s.sampling(),
            "reserve": answer_reserve(s.max_answer_tokens, context),
        }

    def stop(self) -> None:
        if self.job is not None:
            self.client.stop(self.job)

    # -- streaming -----------------------------------------------------------------------------

    def _on_token(self, job: int, piece: str) -> None:
        if job != self.job or self.saver is None:
            return
        self.saver.append(piece)
        if self.saver.save_error is not None and not self._warned:
            self._warned = True  # once an answer: it goes on streaming, saves are retried
            self.error.emit(f"The answer is not being saved: {self.saver.save_error}", "store")
        self._progress_note = ""
        if not self._flush_timer.isActive():
            cost_ms = int(self.render_cost() * 1000)
            self._flush_timer.start(max(REPAINT_MS, REPAINT_SHARE * cost_ms))

    def _on_prefill(self, job: int, done: int, total: int) -> None:
        if job == self.job and total:
            self._progress_note = f"Reading the prompt… {100 * done // total}%"
            if not self._flush_timer.isActive():
                self._flush_timer.start()

    def flush(self) -> None:
        """Show what has streamed in so far (called at most ~30 times a second)."""
        if self.saver is None:
            return
        self.chat.set_text(self.saver.message_id, self.saver.text)
        note = self._progress_note or ("Writing…" if self.busy else "")
        self.chat.set_progress(self.saver.message_id, note)

    def _on_finished(self, job: int, stats: dict) -> None:
        if job != self.job:
            return
        self.flush()
        saver, stopped = self.saver, stats.get("stop_reason") == "cancelled"
        with self._closing():
            if stopped and not saver.text:
                self._discard_answer()
            else:
                self.chat.finish(saver.message_id, "stopped" if stopped else "complete", stats,
                                 saver.text)
                (saver.stop if stopped else saver.finish)(stats)

    def _on_failed(self, job: int, message: str, details: dict) -> None:
        if job != self.job:
            return
        self.flush()
        saver = self.saver
        if details.get("kind") == "overflow" and not saver.text:
            with self._closing():
                self._discard_answer()
            self.overflow.emit(details)
            return
        with self._closing():
            self.chat.finish(saver.message_id, "error", {"error": message}, saver.text)
            saver.fail(message)
        self.error.emit(message, details.get("kind", "error"))

    @contextmanager
    def _closing(self):
        """The answer's last save: whatever happens to it, the chat is not left busy."""
        try:
            yield
        except OSError as exc:
            self.error.emit(f"The answer's last part could not be saved: {exc}", "store")
        finally:
            self._done()

    def _discard_answer(self) -> None:
        self.saver.stop({})
        self.store.delete_message(self.saver.message_id)
        self.chat.remove({self.saver.message_id})

    def _done(self) -> None:
        self._flush_timer.stop()
        self.job, self.saver, self._progress_note, self._warned = None, None, "", False
        self.busy_changed.emit(False)
        self.chats_changed.emit()

    # -- message actions -----------------------------------------------------------------------

    def act(self, name: str, message_id: str) -> None:
        message = self.chat.message(message_id)
        if message is None:
            return
        if name == "copy":
            QGuiApplication.clipboard().setText(message.text)
        elif self.busy:
            return  # the view offers only "copy" while an answer streams
        elif name in ("delete", "regenerate"):
            try:
                self.store.delete_message(message_id)
            except OSError as exc:
                self.error.emit(f"The message could not be deleted: {exc}", "store")
                return
            self.chat.remove({message_id})
            self.chats_changed.emit()
            if name == "regenerate":
                self.answer()
        elif name == "continue":
            self.answer(continuing=message)
        elif name == "edit":
            self.edit(message)

    def edit(self, message: Message) -> None:
        """Put a sent message back into the composer; sending replaces it and what follows.
        What the composer held is put aside and comes back afterwards."""
        if self.editing_id is None:
            self._draft = (self.composer.text(), list(self.composer.items))
        self.editing_id = message.id
        self.composer.clear()
        self.composer.set_text(message.text)
        for a in message.attachments:
            item = PendingAttachment.from_path(a.path, a.name)
            item.token_cost, item.extracted_text = a.token_cost, a.extracted_text
            item.page_count = a.page_count
            self.composer.add_item(item)
        self.composer.input.setFocus()
        self.editing.emit(True)

    def cancel_edit(self) -> None:
        if self.editing_id is not None:
            self.editing_id = None
            self.composer.clear()
            self._restore_draft()
            self.editing.emit(False)

    def _restore_draft(self) -> None:
        if self._draft is not None:
            text, items = self._draft
            self._draft = None
            self.composer.set_text(text)
            for item in items:
                self.composer.add_item(item)

    def _drop_from(self, message_id: str, keep: str) -> None:
        """Delete a message and every later one but `keep` (edit and resend)."""
        index = next(i for i, m in enumerate(self.chat.messages) if m.id == message_id)
        doomed = [m.id for m in self.chat.messages[index:] if m.id != keep]
        try:
            for doomed_id in doomed:
                self.store.delete_message(doomed_id)
        except OSError as exc:  # they stay stored, and come back when the chat is reopened
            self.error.emit(f"The earlier version could not be removed: {exc}", "store")
        self.chat.remove(set(doomed))


def turn(message: Message) -> dict:
    """A message as the worker's plain data."""
    return {"role": message.role, "text": message.text,
            "attachments": [{"kind": a.kind, "path": str(a.path), "name": a.name}
                            for a in message.attachments]}


def answer_reserve(max_answer_tokens: int, context_length: int) -> int:
    """Room kept free for the answer: the answer length, but never more than a quarter of the
    context (a long answer setting must not make every chat 'full')."""
    if not context_length:
        return 0
    return min(max_answer_tokens, context_length // 4)
