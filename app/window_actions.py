"""The window's menus, keyboard shortcuts, dialogs and drag-and-drop."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from app import settings as settings_store
from app import theme

SHORTCUTS = """<table cellpadding='3'>
<tr><td><b>Enter</b></td><td>send</td></tr><tr><td><b>Shift+Enter</b></td><td>new line</td></tr>
<tr><td><b>Ctrl+N</b></td><td>new chat</td></tr><tr><td><b>Ctrl+O</b></td><td>attach files</td></tr>
<tr><td><b>Esc</b></td><td>stop the answer</td></tr><tr><td><b>Ctrl+F</b></td><td>search</td></tr>
<tr><td><b>Ctrl+L</b></td><td>go to the message box</td></tr>
<tr><td><b>Ctrl+,</b></td><td>settings</td></tr><tr><td><b>Ctrl+M</b></td><td>models</td></tr>
<tr><td><b>Ctrl+B</b></td><td>show or hide the chat list</td></tr></table>"""


class WindowActions(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.w = window
        self._panel = None
        bar = window.menuBar()
        chat = bar.addMenu("&Chat")
        self.new = self._add(chat, "&New chat", "Ctrl+N", window.new_chat)
        self.attach = self._add(chat, "&Attach files…", "Ctrl+O", self.attach_files)
        self.stop = self._add(chat, "&Stop answer", "Esc", self.escape)
        self.search = self._add(chat, "&Search chats", "Ctrl+F", window.sidebar.focus_search)
        self.focus = self._add(chat, "Go to the &message box", "Ctrl+L", self.focus_input)
        chat.addSeparator()
        self._add(chat, "&Export chat…", "Ctrl+E", lambda: self.export_chat(None))
        self._add(chat, "&Quit", QKeySequence.StandardKey.Quit, window.close)
        model = bar.addMenu("&Model")
        self.models = self._add(model, "&Models…", "Ctrl+M", self.show_models)
        self.settings = self._add(model, "&Settings…", "Ctrl+,", self.show_settings)
        view = bar.addMenu("&View")
        self._add(view, "Chat &list", "Ctrl+B", self.toggle_sidebar)
        help_menu = bar.addMenu("&Help")
        self._add(help_menu, "&Keyboard shortcuts", "F1", self.show_shortcuts)
        self._add(help_menu, "&About the bundled model", None, self.show_first_run)

    def _add(self, menu, text: str, keys, slot) -> QAction:
        action = QAction(text, self.w)
        if keys is not None:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.w.addAction(action)  # shortcuts work with the menu bar hidden too
        return action

    # -- simple actions ------------------------------------------------------------------------

    def escape(self) -> None:
        """Esc: stop the answer; otherwise cancel an edit; otherwise close the banner."""
        w = self.w
        if w.chats.busy:
            w.chats.stop()
        elif w.chats.editing_id is not None:
            w.chats.cancel_edit()
        elif w.sidebar.search.hasFocus() and w.sidebar.search.text():
            w.sidebar.search.clear()
        else:
            w.banner.dismiss()

    def focus_input(self) -> None:
        self.w.composer.input.setFocus()

    def toggle_sidebar(self) -> None:
        visible = not self.w.sidebar.isVisible()
        self.w.sidebar.setVisible(visible)
        self.w.settings.sidebar_visible = visible

    def attach_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.w, "Attach files", "", "Pictures and documents (*.png *.jpg *.jpeg *.webp *.avif "
            "*.gif *.bmp *.tif *.tiff *.pdf *.docx *.docm *.txt *.text *.md *.markdown *.html "
            "*.htm *.xhtml *.csv *.tsv *.json *.jsonl *.ndjson *.yaml *.yml *.toml *.xml *.ini "
            "*.log *.tex *.py *.js *.ts *.c *.cpp *.h *.hpp *.cs *.java *.kt *.rs *.go *.rb "
            "*.php *.swift *.sh *.sql *.r *.lua);;All files (*)")
        if paths:
            self.w.composer.add_paths(paths)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self.w, "Keyboard shortcuts", SHORTCUTS)

    def show_first_run(self) -> None:
        w = self.w
        w.settings.first_run_done = True
        settings_store.save(w.settings)
        w.banner.show_message(
            "<b>Welcome to Gemma Desk.</b> It started with the bundled Gemma 3 270M, a small "
            "<i>base</i> model: it continues text rather than following instructions, so its "
            "answers are often odd. For real conversations open a bigger, instruction-tuned "
            "Gemma 3 (1B to 27B, “-it”): the model list finds the ones already on this computer.",
            "info", "welcome", [("Choose a model…", "Open the model list", self.show_models)])

    # -- dialogs -------------------------------------------------------------------------------

    def show_models(self) -> None:
        from app.model_panel import ModelPanel

        w = self.w
        if self._panel is None:
            self._panel = ModelPanel(w.client, w.settings, w)
            self._panel.model_chosen.connect(lambda source, mmproj: w.load_model(source, mmproj))
            self._panel.folder_added.connect(self._add_folder)
            self._panel.server_chosen.connect(w.use_server)
        self._panel.show()
        self._panel.raise_()
        self._panel.rescan()

    def _add_folder(self, folder: str) -> None:
        if folder not in self.w.settings.model_folders:
            self.w.settings.model_folders.append(folder)
            settings_store.save(self.w.settings)

    def show_settings(self) -> None:
        from app.settings_dialog import SettingsDialog

        w = self.w
        chat = w.chats.conversation
        max_context = (w.client.info or {}).get("max_context", 131072)
        dialog = SettingsDialog(w.settings, chat.system_prompt if chat else None, max_context, w)
        if not dialog.exec():
            return
        old_device, old_context = w.settings.device, w.settings.context_length
        new = dialog.result_settings()
        w.settings.__dict__.update(new.__dict__)  # everyone holds this one object
        settings_store.save(w.settings)
        if chat is not None and dialog.result_chat_prompt() != chat.system_prompt:
            try:
                w.store.set_system_prompt(chat.id, dialog.result_chat_prompt())
                w.chat_model.set_system_note(dialog.result_chat_prompt())
            except OSError as exc:
                w.banner.show_message(f"This chat's instructions could not be saved: {exc}",
                                      "error", "store")
        theme.apply(QApplication.instance(), new.theme, new.font_size)
        if new.device != old_device:
            w.load_model()
        elif new.context_length != old_context:
            w.client.set_context_length(new.context_length)
        w.context.count_now()

    # -- chats ---------------------------------------------------------------------------------

    def retry_answer(self) -> None:
        """Ask again for the last answer (the one a server failed to finish)."""
        w = self.w
        messages = w.chat_model.messages
        if messages and messages[-1].role == "model" and not w.chats.busy:
            w.banner.dismiss("remote")
            w.chats.act("regenerate", messages[-1].id)

    def delete_chat(self, chat_id: str) -> None:
        w = self.w
        answer = QMessageBox.question(w, "Delete chat", "Delete this chat and its attachments? "
                                      "This cannot be undone.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        if w.chats.busy and chat_id == w.conversation_id():
            w.chats.stop()
            return
        try:
            w.store.delete_conversation(chat_id)
        except OSError as exc:
            w.banner.show_message(f"The chat could not be deleted: {exc}", "error", "store")
            return
        if chat_id == w.conversation_id():
            w.new_chat()
        w.sidebar.refresh(w.conversation_id())

    def export_chat(self, chat_id: str | None) -> None:
        from app import export

        w = self.w
        chat_id = chat_id or w.conversation_id()
        if chat_id is None:
            return
        chat = w.store.get_conversation(chat_id)
        name = export.safe_name(chat.display_title)
        path, chosen = QFileDialog.getSaveFileName(
            w, "Export chat", name, "Markdown (*.md);;Web page (*.html);;Gemma Desk (*.json)")
        if not path:
            return
        try:
            if chosen.startswith("Markdown"):
                done = export.export_markdown(chat, Path(path).parent)
            elif chosen.startswith("Web"):
                done = export.export_html(chat, Path(path))
            else:
                done = export.export_json(chat, Path(path))
        except OSError as exc:
            w.banner.show_message(f"The chat could not be exported: {exc}", "error", "export")
            return
        w.statusBar().showMessage(f"Exported to {done}", 6000)

    # -- drag and drop -------------------------------------------------------------------------

    def drag_event(self, event) -> bool:
        """Files dragged anywhere over the window: show the drop zone, attach on drop."""
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() \
            else []
        if not files:
            return False
        if event.type() == QEvent.Type.Drop:
            self.w.drop_zone.hide()
            self.w.composer.add_paths(files)
        else:
            self.w.drop_zone.cover()
        event.acceptProposedAction()
        return True
