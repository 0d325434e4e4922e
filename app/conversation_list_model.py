"""A thin Qt list model over Store.list_conversations() (pinned first, then newest first)."""

from __future__ import annotations

import time

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.conversation import Conversation

IdRole = Qt.ItemDataRole.UserRole + 1  # str
UpdatedRole = Qt.ItemDataRole.UserRole + 2  # float, Unix seconds
PinnedRole = Qt.ItemDataRole.UserRole + 3  # bool
FolderRole = Qt.ItemDataRole.UserRole + 4  # str | None
ConversationRole = Qt.ItemDataRole.UserRole + 5  # Conversation (without messages)
_ROOT = QModelIndex()


class ConversationListModel(QAbstractListModel):
    """Call refresh() after anything that changes the list (new chat, message, rename, pin,
    delete). A refresh that keeps the same chats in the same order updates rows in place, so
    the view keeps its selection and scroll position."""

    def __init__(self, store, folder: str | None = None, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.folder = folder
        self._chats: list[Conversation] = store.list_conversations(folder)

    def refresh(self) -> None:
        chats = self.store.list_conversations(self.folder)
        if [c.id for c in chats] == [c.id for c in self._chats]:
            self._chats = chats
            if chats:
                self.dataChanged.emit(self.index(0), self.index(len(chats) - 1))
            return
        self.beginResetModel()
        self._chats = chats
        self.endResetModel()

    def set_folder(self, folder: str | None) -> None:
        self.folder = folder
        self.refresh()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._chats)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._chats):
            return None
        chat = self._chats[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return chat.display_title
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{chat.display_title}\nLast message {_when(chat.updated_at)}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return ("Pinned: " if chat.pinned else "") + chat.display_title
        return {IdRole: chat.id, UpdatedRole: chat.updated_at, PinnedRole: chat.pinned,
                FolderRole: chat.folder, ConversationRole: chat}.get(role)

    def roleNames(self) -> dict[int, bytes]:
        names = super().roleNames()
        names.update({IdRole: b"conversationId", UpdatedRole: b"updatedAt",
                      PinnedRole: b"pinned", FolderRole: b"folder"})
        return names

    def conversation_at(self, row: int) -> Conversation:
        return self._chats[row]

    def row_of(self, conversation_id: str) -> int:
        """The row showing that chat, or -1."""
        return next((i for i, c in enumerate(self._chats) if c.id == conversation_id), -1)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
