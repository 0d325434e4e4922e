"""The open chat as a Qt list model: its messages, plus marker rows the view draws.

Only the newest messages are rows at first (`PAGE`); `load_earlier()` prepends older ones as the
user scrolls up, so opening a chat of a thousand messages lays out a page, not a thousand.
Marker rows: "system" (the chat's own system prompt or a carried-over summary, at the top) and
"dropped" (before the first message the model still sees, when older turns were dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from app.conversation import Conversation, Message

PAGE = 30
CONTEXT_START = "context_start"  # key in a message's stats: the model's view starts here

MessageRole = Qt.ItemDataRole.UserRole + 1
KindRole = Qt.ItemDataRole.UserRole + 2
RevisionRole = Qt.ItemDataRole.UserRole + 3


@dataclass
class Row:
    kind: str  # "message", "system" or "dropped"
    message: Message | None = None
    text: str = ""


class ChatModel(QAbstractListModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.conversation: Conversation | None = None
        self.messages: list[Message] = []
        self.first_loaded = 0  # index in `messages` of the oldest message shown
        self.revisions: dict[str, int] = {}  # message id -> bumps whenever it must be redrawn
        self.progress: dict[str, str] = {}  # message id -> transient note ("Reading… 40%")
        self._rows: list[Row] = []

    # -- reading -------------------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == MessageRole:
            return row.message
        if role == KindRole:
            return row.kind
        if role == RevisionRole:
            return self.revisions.get(row.message.id, 0) if row.message else 0
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return spoken_text(row)
        if role == Qt.ItemDataRole.AccessibleDescriptionRole and row.message:
            return stats_line(row.message)
        return None

    def flags(self, index):
        flags = super().flags(index)
        if index.isValid() and self._rows[index.row()].message is not None:
            # "editable" opens a read-only text view over the message, to select from it
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def row_at(self, row: int) -> Row:
        return self._rows[row]

    def row_of(self, message_id: str) -> int:
        return next((i for i, r in enumerate(self._rows)
                     if r.message is not None and r.message.id == message_id), -1)

    def message(self, message_id: str) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def context_start(self) -> int:
        """Index in `messages` of the first message the model sees (0 unless turns were dropped)."""
        marked = [i for i, m in enumerate(self.messages) if m.stats.get(CONTEXT_START)]
        return marked[-1] if marked else 0

    def has_earlier(self) -> bool:
        return self.first_loaded > 0

    # -- changing ------------------------------------------------------------------------------

    def set_conversation(self, conversation: Conversation | None) -> None:
        self.beginResetModel()
        self.conversation = conversation
        self.messages = list(conversation.messages) if conversation else []
        self.first_loaded = max(0, len(self.messages) - PAGE)
        self.progress.clear()
        self._rows = self._build_rows()
        self.endResetModel()

    def set_system_note(self, text: str) -> None:
        if self.conversation is not None:
            self.conversation.system_prompt = text
            self._rebuild()

    def load_earlier(self, count: int = PAGE) -> int:
        """Prepend up to `count` older messages; returns how many rows were added."""
        if not self.first_loaded:
            return 0
        self.first_loaded = max(0, self.first_loaded - count)
        rows = self._build_rows()
        added = len(rows) - len(self._rows)  # the rows shown so far are the tail of `rows`
        self.beginInsertRows(QModelIndex(), 0, added - 1)
        self._rows = rows
        self.endInsertRows()
        return added

    def trim_to_last_page(self) -> int:
        """Let go of the older rows again (the user is back at the end of a long chat), so that
        resizing the window relayouts a page, not a thousand messages. Returns rows removed."""
        keep_from = max(0, len(self.messages) - PAGE)
        if keep_from <= self.first_loaded:
            return 0
        self.first_loaded = keep_from
        rows = self._build_rows()
        removed = len(self._rows) - len(rows)  # `rows` is the tail of what is shown
        self.beginRemoveRows(QModelIndex(), 0, removed - 1)
        self._rows = rows
        self.endRemoveRows()
        return removed

    def append(self, message: Message) -> None:
        self.messages.append(message)
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(Row("message", message))
        self.endInsertRows()

    def set_text(self, message_id: str, text: str) -> None:
        message = self.message(message_id)
        if message is not None and message.text != text:
            message.text = text
            self.touch(message_id)

    def set_progress(self, message_id: str, note: str) -> None:
        if self.progress.get(message_id) != note:
            self.progress[message_id] = note
            self.touch(message_id)

    def finish(self, message_id: str, status: str, stats: dict, text: str | None = None) -> None:
        message = self.message(message_id)
        if message is None:
            return
        message.status, message.stats = status, dict(stats)
        if text is not None:
            message.text = text
        self.progress.pop(message_id, None)
        self.touch(message_id)

    def touch(self, message_id: str) -> None:
        self.revisions[message_id] = self.revisions.get(message_id, 0) + 1
        row = self.row_of(message_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def remove(self, message_ids: set[str]) -> None:
        self.messages = [m for m in self.messages if m.id not in message_ids]
        self.first_loaded = min(self.first_loaded, len(self.messages))
        self._rebuild()

    def refresh(self) -> None:
        """Rebuild the rows after a message's stats changed which markers depend on."""
        self._rebuild()

    def _rebuild(self) -> None:
        self.beginResetModel()
        self._rows = self._build_rows()
        self.endResetModel()

    def _build_rows(self) -> list[Row]:
        rows: list[Row] = []
        if self.conversation is not None and self.conversation.system_prompt and \
                not self.first_loaded:
            rows.append(Row("system", text=self.conversation.system_prompt))
        start = self.context_start()
        for i in range(self.first_loaded, len(self.messages)):
            if i == start and start > 0:
                rows.append(Row("dropped", text=dropped_text(start)))
            rows.append(Row("message", self.messages[i]))
        return rows


def dropped_text(count: int) -> str:
    noun = "message" if count == 1 else "messages"
    return f"The {count} {noun} above are no longer sent to the model (dropped to fit its context)"


def spoken_text(row: Row) -> str:
    """What a screen reader says for a row."""
    if row.kind == "system":
        return f"Instructions for this chat: {row.text}"
    if row.kind == "dropped":
        return row.text
    message = row.message
    who = "You" if message.role == "user" else "Gemma"
    files = ", ".join(a.name for a in message.attachments)
    attached = f" (attached: {files})" if files else ""
    state = {"stopped": " (stopped)", "interrupted": " (interrupted)",
             "error": " (failed)", "streaming": " (writing)"}.get(message.status, "")
    return f"{who}{state}: {message.text}{attached}"


def stats_line(message: Message) -> str:
    """The muted line under an answer: speed, time to first token, or what went wrong."""
    if message.role != "model":
        return ""
    s = message.stats
    parts = []
    if s.get("decode_tokens"):
        parts.append(f"{s['decode_tokens']} tokens")
    if s.get("decode_tps"):
        parts.append(f"{s['decode_tps']:.1f} tok/s")
    if s.get("ttft_s"):
        parts.append(f"first token {s['ttft_s']:.2f} s")
    status = {"stopped": "Stopped", "interrupted": "Interrupted (the app closed while writing)",
              "context_full": "Context full"}.get(message.status, "")
    if s.get("stop_reason") == "context_full":
        status = "Stopped: the context is full"
    if message.status == "error":
        status = f"Failed: {s.get('error', 'unknown error')}"
    return " · ".join(([status] if status else []) + parts)
