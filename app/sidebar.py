"""The left column: new chat, search (the store's full-text index), and the list of chats."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
)

from app import icons, theme
from app.conversation_list_model import ConversationListModel, IdRole

SEARCH_DELAY_MS = 150


class Sidebar(QFrame):
    chat_chosen = Signal(str)  # conversation id
    hit_chosen = Signal(str, str)  # conversation id, message id
    new_chat = Signal()
    delete_chat = Signal(str)
    export_chat = Signal(str)
    renamed = Signal(str)

    def __init__(self, store, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setMinimumWidth(220)
        self.setMaximumWidth(340)
        self.store = store
        self.current_id: str | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(10, 12, 10, 10)
        box.setSpacing(8)
        self.new_button = QPushButton("  New chat")
        self.new_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setIconSize(QSize(16, 16))
        self.new_button.clicked.connect(self.new_chat)
        box.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setObjectName("SearchField")
        self.search.setPlaceholderText("Search all chats  (Ctrl+F)")
        self.search.setAccessibleName("Search chats")
        self.search.setToolTip("Find messages in every chat (Ctrl+F); Esc clears")
        self.search.setClearButtonEnabled(True)
        self.search_icon = self.search.addAction(icons.icon("search"),
                                                 QLineEdit.ActionPosition.LeadingPosition)
        self.search_icon.setToolTip("Search all chats (Ctrl+F)")
        self.search_icon.triggered.connect(self.focus_search)
        for button in self.search_icon.associatedObjects():
            if button is not self.search:
                button.setAccessibleName("Search")
                button.setToolTip("Search all chats (Ctrl+F)")
        box.addWidget(self.search)
        self.pages = QStackedWidget()
        self.chats = ConversationListModel(store)
        self.list = QListView()
        self.list.setModel(self.chats)
        self.list.setAccessibleName("Chats")
        self.list.setToolTip("Your chats, newest first")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.clicked.connect(lambda index: self.chat_chosen.emit(index.data(IdRole)))
        self.list.activated.connect(lambda index: self.chat_chosen.emit(index.data(IdRole)))
        self.results = QListWidget()
        self.results.setAccessibleName("Search results")
        self.results.setWordWrap(True)
        self.results.itemActivated.connect(self._open_hit)
        self.results.itemClicked.connect(self._open_hit)
        self.empty = QLabel("No messages match.")
        self.empty.setObjectName("Muted")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        for page in (self.list, self.results, self.empty):
            self.pages.addWidget(page)
        for page in (self.list, self.results):  # long titles are elided, never scrolled to
            page.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        box.addWidget(self.pages, 1)
        self._timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.run_search)
        self.search.textChanged.connect(lambda: self._timer.start())
        theme.notifier.changed.connect(self._restyle)
        self._restyle()

    def refresh(self, current_id: str | None = None) -> None:
        self.chats.refresh()
        self.select(current_id)

    def select(self, conversation_id: str | None) -> None:
        self.current_id = conversation_id
        row = self.chats.row_of(conversation_id) if conversation_id else -1
        if row < 0:
            self.list.clearSelection()
            self.list.setCurrentIndex(self.chats.index(-1))
        else:
            self.list.setCurrentIndex(self.chats.index(row))

    def focus_search(self) -> None:
        self.show()
        self.search.setFocus()
        self.search.selectAll()

    def run_search(self) -> None:
        query = self.search.text().strip()
        if not query:
            self.pages.setCurrentWidget(self.list)
            return
        self.results.clear()
        for hit in self.store.search(query):
            who = "You" if hit.role == "user" else "Gemma"
            snippet = "".join(f"<b>{_escape(t)}</b>" if match else _escape(t)
                              for t, match in hit.parts())
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, (hit.conversation_id, hit.message_id))
            plain = "".join(t for t, _ in hit.parts())
            item.setText(f"{hit.conversation_title or 'New chat'} — {who}: {plain}")
            item.setToolTip(f"<b>{_escape(hit.conversation_title)}</b><br>{who}: {snippet}")
            self.results.addItem(item)
        self.pages.setCurrentWidget(self.results if self.results.count() else self.empty)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and self.search.text():
            self.search.clear()
            return
        super().keyPressEvent(event)

    def _open_hit(self, item: QListWidgetItem) -> None:
        conversation_id, message_id = item.data(Qt.ItemDataRole.UserRole)
        self.hit_chosen.emit(conversation_id, message_id)

    def _menu(self, pos) -> None:
        index = self.list.indexAt(pos)
        if not index.isValid():
            return
        chat_id = index.data(IdRole)
        chat = self.chats.conversation_at(index.row())
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename(chat_id, chat.display_title))
        menu.addAction("Unpin" if chat.pinned else "Pin to the top",
                       lambda: self._pin(chat_id, not chat.pinned))
        menu.addAction("Export…", lambda: self.export_chat.emit(chat_id))
        menu.addSeparator()
        menu.addAction("Delete chat…", lambda: self.delete_chat.emit(chat_id))
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def rename(self, chat_id: str, current: str) -> None:
        title, ok = QInputDialog.getText(self, "Rename chat", "Title:", text=current)
        if ok and title.strip():
            self.store.rename(chat_id, title)
            self.refresh(self.current_id)
            self.renamed.emit(chat_id)

    def _pin(self, chat_id: str, pinned: bool) -> None:
        self.store.set_pinned(chat_id, pinned)
        self.refresh(self.current_id)

    def _restyle(self) -> None:
        self.new_button.setIcon(icons.icon("new", size=16))
        self.search_icon.setIcon(icons.icon("search", theme.current().muted, 16))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
