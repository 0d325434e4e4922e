"""The main window: chat list, chat, composer, context meter; the model loads behind it.

The window is on screen before any model loads: the worker thread loads it while the user can
already type (and even send: the request waits for the model).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from app import settings as settings_store
from app import theme
from app.attachment_controller import AttachmentController
from app.banner import Banner
from app.chat_controller import ChatController
from app.chat_model import ChatModel
from app.chat_view import ChatView
from app.composer import Composer
from app.context_controller import ContextController
from app.context_meter import ContextMeter
from app.drop_zone import DropZone
from app.load_progress import LoadProgress
from app.sidebar import Sidebar
from app.store import Store, acquire_instance_lock, release_instance_lock
from app.top_bar import TopBar
from app.window_actions import WindowActions

COMPOSER_WIDTH = 820


class MainWindow(QMainWindow):
    def __init__(self, client=None, store: Store | None = None, settings=None) -> None:
        """`client` is an EngineClient (made and owned here when not given)."""
        super().__init__()
        self.setWindowTitle("Gemma Desk")
        self.setAccessibleName("Gemma Desk")
        self.resize(1180, 800)
        self.settings = settings or settings_store.load()
        theme.apply(QApplication.instance(), self.settings.theme, self.settings.font_size)
        self._owns_store = store is None
        # The lock first: a second window must not mark the first one's answer as interrupted.
        self._only_window = acquire_instance_lock() if store is None else True
        self.store = store or Store(recover=self._only_window)
        self._owns_client = client is None
        if client is None:
            from app.worker import EngineClient

            client = EngineClient()
        self.client = client
        self._build()
        self.chats = ChatController(self.store, client, self.chat_model, self.composer,
                                    self.settings, self)
        self.chats.render_cost = lambda: self.view.delegate.cache.last_build_s
        self.context = ContextController(self.chats, client, self.meter, self.banner, self)
        self.actions = WindowActions(self)
        self.attachments = AttachmentController(client, self.composer, self.banner, self.context,
                                                self.settings, self.actions.show_models, self)
        self.load_progress = LoadProgress(client, self.banner, self.settings, self.load_model,
                                          self.actions.show_models, self)
        self._connect()
        QApplication.instance().installEventFilter(self)
        QApplication.styleHints().colorSchemeChanged.connect(self.on_system_colours)
        self._startup_notices()
        self._restore_draft()
        if client.info is None:
            QTimer.singleShot(0, self.load_model)
        else:
            self.on_loaded(client.info)

    # -- building ------------------------------------------------------------------------------

    def _build(self) -> None:
        root = QWidget()
        row = QHBoxLayout(root)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = Sidebar(self.store)
        self.sidebar.setVisible(self.settings.sidebar_visible)
        row.addWidget(self.sidebar)
        self.pane = QWidget()
        self.pane.setObjectName("ChatPane")
        column = QVBoxLayout(self.pane)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.top_bar = TopBar()
        column.addWidget(self.top_bar)
        self.chat_model = ChatModel(self)
        self.view = ChatView(self.chat_model)
        column.addWidget(self.view, 1)
        self.banner = Banner()
        self.composer = Composer()
        for widget in (self.banner, self.composer):
            column.addLayout(_centred(widget))
        column.addSpacing(12)
        row.addWidget(self.pane, 1)
        self.setCentralWidget(root)
        self.drop_zone = DropZone(root)
        self.server_note = QLabel()
        self.server_note.setObjectName("Muted")
        self.server_note.setAccessibleName("Where the chat goes")
        self.server_note.hide()
        self.statusBar().addPermanentWidget(self.server_note)
        self.meter = ContextMeter()
        self.statusBar().addPermanentWidget(self.meter)
        self.statusBar().setSizeGripEnabled(False)

    def _connect(self) -> None:
        c, chats = self.client, self.chats
        c.loading.connect(self.on_loading)
        c.loaded.connect(self.on_loaded)
        c.unloaded.connect(self.top_bar.show_no_model)
        c.load_failed.connect(self.on_load_failed)
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(chats.stop)
        self.composer.attach_requested.connect(self.actions.attach_files)
        self.composer.draft_changed.connect(self.context.draft_edited)
        self.view.action_requested.connect(chats.act)
        self.view.notice.connect(lambda text: self.statusBar().showMessage(text, 3000))
        chats.busy_changed.connect(self.on_busy)
        chats.chats_changed.connect(self.on_chats_changed)
        chats.conversation_opened.connect(self.on_conversation_opened)
        chats.error.connect(self.on_error)
        chats.editing.connect(self.on_editing)
        self.sidebar.chat_chosen.connect(chats.open)
        self.sidebar.hit_chosen.connect(self.open_hit)
        self.sidebar.new_chat.connect(self.new_chat)
        self.sidebar.delete_chat.connect(self.actions.delete_chat)
        self.sidebar.export_chat.connect(self.actions.export_chat)
        self.sidebar.renamed.connect(lambda _id: self.on_chats_changed())
        self.top_bar.sidebar_toggled.connect(self.actions.toggle_sidebar)
        self.top_bar.models_requested.connect(self.actions.show_models)
        self.top_bar.settings_requested.connect(self.actions.show_settings)

    # -- the model -----------------------------------------------------------------------------

    def load_model(self, source: str | None = None, mmproj: str | None = None) -> None:
        previous = (self.settings.model_source, self.settings.mmproj)
        if source is not None:
            self.settings.model_source, self.settings.mmproj = source, mmproj or ""
            self.settings.use_server = False
            settings_store.save(self.settings)
        s = self.settings
        self.chats.stop()  # an answer in progress ends first; what it wrote is kept
        self.banner.dismiss("load")
        if s.use_server:
            self.top_bar.show_loading(0.0, f"Asking {s.server_url}")
            self.client.use_server(s.server_url, s.server_model, s.server_context_length)
        else:
            self.top_bar.show_loading(0.0, "Starting")
            self.load_progress.starting(previous)
            self.client.load_model(s.model_source or None, s.mmproj or None, s.device,
                                   s.context_length)

    def use_server(self, url: str, model: str, api_key: str = "",
                   context_length: int = 0) -> None:
        """Send chats to `model` on the server at `url` from now on (the key goes to the OS
        keychain or the user-only secrets file, never into the settings)."""
        from app.secrets import save_api_key

        url = url.strip()
        if api_key:
            save_api_key(url, api_key)
        s = self.settings
        s.use_server, s.server_url, s.server_model = True, url, model.strip()
        s.server_context_length = max(0, context_length)
        settings_store.save(s)
        self.load_model()

    def on_loading(self, fraction: float, message: str) -> None:
        self.top_bar.show_loading(fraction, message)
        self.statusBar().showMessage(message)

    def on_loaded(self, info: dict) -> None:
        self.top_bar.show_model(info)
        self.banner.dismiss("load")
        self.show_destination(info)
        self.statusBar().showMessage(f"{info['name']} is ready · {info['context_length']:,}-token "
                                     f"context · loaded in {info['load_seconds']:.1f} s", 8000)
        self.view.empty_text = _welcome(info)
        self.view.viewport().update()
        if info.get("is_default") and not self.settings.first_run_done:
            self.actions.show_first_run()
        elif not info.get("is_default"):
            self.banner.dismiss("welcome")  # its advice, to choose another model, was taken
        self.attachments.measure_all()
        self.context.count_now()

    def show_destination(self, info: dict) -> None:
        """Say plainly when chats leave this computer, and for where."""
        server = info.get("server")
        self.server_note.setVisible(bool(server))
        self.server_note.setText(f"Chats go to the server {server} ({info['name']})"
                                 if server else "")

    def on_load_failed(self, message: str) -> None:
        if self.client.info is None:
            self.top_bar.show_no_model()
        else:  # the file was refused before the model in use was let go
            self.top_bar.show_model(self.client.info)
        self.statusBar().clearMessage()  # the banner says why (LoadProgress)

    # -- composing and sending -----------------------------------------------------------------

    def send(self, text: str, items: list) -> None:
        if not self.attachments.sendable(items) or self.context.blocks_send():
            return
        if self.chats.send(text, items):
            self.banner.dismiss("attachment")

    def on_busy(self, busy: bool) -> None:
        self.composer.set_busy(busy)
        self.view.busy = busy
        self.view.refresh_actions()
        if not busy:
            self.context.count_now()

    def on_editing(self, editing: bool) -> None:
        if editing:
            self.banner.show_message(
                "Editing a sent message. Sending replaces it and every message after it; what "
                "you were writing comes back afterwards.", "info", "edit",
                [("Cancel editing", "Keep the chat as it is (Esc)", self.chats.cancel_edit)])
        else:
            self.banner.dismiss("edit")

    def on_error(self, message: str, kind: str) -> None:
        actions = []
        if kind == "oom":
            actions = [("Settings…", "Choose a shorter context length",
                        self.actions.show_settings)]
        if kind == "remote":
            actions = [("Retry", "Ask the server for this answer again", self.actions.retry_answer)]
        self.banner.show_message(message, "error", kind, actions)

    # -- chats ---------------------------------------------------------------------------------

    def conversation_id(self) -> str | None:
        return self.chats.conversation.id if self.chats.conversation else None

    def new_chat(self) -> None:
        self.chats.new_chat()
        self.composer.input.setFocus()

    def open_files(self, paths: list[str]) -> None:
        """A new chat with these files attached (files given on the command line)."""
        self.new_chat()
        self.composer.add_paths([str(p) for p in paths])

    def open_hit(self, conversation_id: str, message_id: str) -> None:
        if conversation_id != self.conversation_id():
            self.chats.open(conversation_id)
        self.view.reveal(message_id)

    def on_chats_changed(self) -> None:
        self.sidebar.refresh(self.conversation_id())
        row = self.sidebar.chats.row_of(self.conversation_id() or "")
        if row >= 0:  # the first message names a chat: show the new title
            self.chats.conversation.title = self.sidebar.chats.conversation_at(row).title
            self.show_title()

    def on_conversation_opened(self) -> None:
        self.show_title()
        self.sidebar.refresh(self.conversation_id())
        self.context.count_now()

    def show_title(self) -> None:
        chat = self.chats.conversation
        title = chat.display_title if chat else "New chat"
        self.top_bar.set_title(title)
        self.setWindowTitle(f"{title} — Gemma Desk")

    def on_system_colours(self, _scheme) -> None:
        if self.settings.theme == "system":
            theme.apply(QApplication.instance(), "system", self.settings.font_size)

    # -- window events -------------------------------------------------------------------------

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop) and \
                isinstance(watched, QWidget) and watched.window() is self:
            return self.actions.drag_event(event)
        if kind == QEvent.Type.DragLeave and isinstance(watched, QWidget) and \
                watched.window() is self:
            self.drop_zone.hide()
        return False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.drop_zone.isVisible():
            self.drop_zone.cover()

    def closeEvent(self, event) -> None:
        QApplication.instance().removeEventFilter(self)
        self.chats.stop()
        if self.chats.saver is not None:
            self.chats.flush()
            try:
                self.chats.saver.stop({"stop_reason": "closed"})
            except OSError:
                pass  # the answer stays as last saved, marked interrupted at the next start
        if self._owns_client:
            self.client.shutdown()
        self.chats.cancel_edit()  # the draft put aside for an edit is what was being written
        self.settings.draft_text = self.composer.text()
        self.settings.draft_files = [str(i.path) for i in self.composer.items]
        settings_store.save(self.settings)
        if self._owns_store:
            release_instance_lock()
        super().closeEvent(event)

    def _restore_draft(self) -> None:
        """What was being written when the app closed comes back (files that still exist)."""
        self.composer.set_text(self.settings.draft_text)
        self.composer.add_paths([p for p in self.settings.draft_files if Path(p).is_file()])

    def _startup_notices(self) -> None:
        if self.store.recovery_notice:
            self.banner.show_message(self.store.recovery_notice, "warning", "store")
        elif not self._only_window:
            self.banner.show_message(
                "Gemma Desk is already open on these chats in another window. Both can be used "
                "safely, but one does not show what the other writes until it is reopened.",
                "warning", "store")
        self.sidebar.refresh()


def _centred(widget: QWidget) -> QHBoxLayout:
    """Keep the composer and banners as wide as the chat's text column."""
    widget.setMaximumWidth(COMPOSER_WIDTH)
    row = QHBoxLayout()
    row.setContentsMargins(24, 0, 24, 8)
    row.addStretch(1)
    row.addWidget(widget, 100)  # grows to its maximum width before the margins grow
    row.addStretch(1)
    return row


def _welcome(info: dict) -> str:
    if info.get("base_model"):
        return (f"{info['name'].split(' on ')[0]} is ready.\nIt is a small base model: it "
                "continues text rather than following instructions.\nFor real conversations "
                "choose a bigger Gemma 3 in the model list (Ctrl+M).")
    pictures = "Drop or paste pictures and files to talk about them." if info["sees_images"] \
        else "Drop or paste files to talk about them."
    return f"{info['name'].split(' on ')[0]} is ready.\n{pictures}"
