"""Where a message is written: text (Enter sends, Shift+Enter breaks the line), attachment chips,
attach and send/stop buttons. Pasted pictures become attachments; nothing typed is ever cleared
until the window has taken the message."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import icons, theme
from app.attachment_chip import AttachmentChip
from app.attachments import PendingAttachment

MAX_LINES = 10


class ComposerInput(QPlainTextEdit):
    send_pressed = Signal()
    image_pasted = Signal(QImage)
    files_pasted = Signal(list)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerInput")
        self.setPlaceholderText("Message Gemma…  (Enter sends, Shift+Enter for a new line)")
        self.setAccessibleName("Message")
        self.setToolTip("Write your message. Enter sends, Shift+Enter starts a new line. "
                        "Paste or drop pictures and files to attach them.")
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setTabChangesFocus(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        plain = not event.modifiers() & (Qt.KeyboardModifier.ShiftModifier |
                                         Qt.KeyboardModifier.AltModifier)
        if enter and plain:
            self.send_pressed.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source) -> bool:
        return source.hasImage() or source.hasUrls() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source) -> None:
        files = [u.toLocalFile() for u in source.urls() if u.isLocalFile()] if source.hasUrls() \
            else []
        if files:
            self.files_pasted.emit(files)
        elif source.hasImage():
            self.image_pasted.emit(QImage(source.imageData()))
        else:
            self.insertPlainText(source.text())  # plain text only: no hidden formatting

    def _fit_height(self, *_args) -> None:
        """Grow with the text up to MAX_LINES, then scroll."""
        line = self.fontMetrics().lineSpacing()
        lines = max(1, int(self.document().size().height()))
        policy = Qt.ScrollBarPolicy
        self.setVerticalScrollBarPolicy(policy.ScrollBarAsNeeded if lines > MAX_LINES
                                        else policy.ScrollBarAlwaysOff)
        margins = 2 * int(self.document().documentMargin()) + 2 * self.frameWidth()
        self.setFixedHeight(min(lines, MAX_LINES) * line + margins + 2)


class Composer(QFrame):
    send_requested = Signal(str, list)  # text, [PendingAttachment]
    stop_requested = Signal()
    attach_requested = Signal()
    attachment_added = Signal(object)  # PendingAttachment: the window measures it
    draft_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Composer")
        self.items: list[PendingAttachment] = []
        self.busy = False
        self._paste_dir: Path | None = None
        self._pasted = 0
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 10, 10, 8)
        box.setSpacing(6)
        box.addWidget(self._build_chips())
        self.input = ComposerInput()
        box.addWidget(self.input)
        box.addLayout(self._build_buttons())
        self.input.send_pressed.connect(self.request_send)
        self.input.image_pasted.connect(self.add_image)
        self.input.files_pasted.connect(self.add_paths)
        self.input.textChanged.connect(self._text_changed)
        theme.notifier.changed.connect(self._restyle)
        self._restyle()
        self._update_buttons()

    def _build_chips(self) -> QWidget:
        self.chip_area = QScrollArea()
        self.chip_area.setWidgetResizable(True)
        self.chip_area.setFrameShape(QFrame.Shape.NoFrame)
        self.chip_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.chip_area.setStyleSheet("background: transparent;")
        self.chip_area.setFixedHeight(52)
        holder = QWidget()
        self.chip_row = QHBoxLayout(holder)
        self.chip_row.setContentsMargins(0, 0, 0, 0)
        self.chip_row.setSpacing(8)
        self.chip_row.addStretch(1)
        self.chip_area.setWidget(holder)
        self.chip_area.setAccessibleName("Attachments")
        self.chip_area.hide()
        return self.chip_area

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(6)
        self.attach_button = _tool_button("Attach files (Ctrl+O)", "Attach files")
        self.attach_button.clicked.connect(self.attach_requested)
        row.addWidget(self.attach_button)
        self.hint = QLabel()
        self.hint.setObjectName("Muted")
        self.hint.setAccessibleName("Composer status")
        row.addWidget(self.hint, 1)
        self.send_button = _tool_button("Send (Enter)", "Send message")
        self.send_button.setObjectName("SendButton")
        self.send_button.setFixedSize(32, 32)
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.send_button)
        return row

    # -- text ----------------------------------------------------------------------------------

    def text(self) -> str:
        return self.input.toPlainText()

    def set_text(self, text: str) -> None:
        self.input.setPlainText(text)
        cursor = self.input.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.input.setTextCursor(cursor)

    def set_hint(self, text: str) -> None:
        self.hint.setText(text)

    def request_send(self) -> None:
        if self.busy or not self.can_send():
            return
        self.send_requested.emit(self.text().strip(), list(self.items))

    def can_send(self) -> bool:
        usable = [i for i in self.items if not i.error]
        return bool(self.text().strip() or usable)

    def clear(self) -> None:
        """The window took the message: empty the composer."""
        self.input.clear()
        for item in list(self.items):
            self.remove(item.key)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    # -- attachments ---------------------------------------------------------------------------

    def add_paths(self, paths: list[str]) -> None:
        for path in paths:
            self.add_item(PendingAttachment.from_path(path))

    def add_image(self, image: QImage) -> None:
        if image.isNull():
            return
        path = self._paste_path("Pasted image", ".png")
        image.save(str(path), "PNG")
        self.add_item(PendingAttachment.from_path(path))

    def text_to_document(self) -> None:
        """Move the typed or pasted text into an attached file: a text too long for the context
        can then be summarised in sections or read in part, as any document."""
        path = self._paste_path("Pasted text", ".txt")
        path.write_text(self.text(), encoding="utf-8")
        self.input.clear()
        self.add_item(PendingAttachment.from_path(path))

    def _paste_path(self, stem: str, suffix: str) -> Path:
        if self._paste_dir is None:
            self._paste_dir = Path(tempfile.mkdtemp(prefix="gemma-desk-paste-"))
        self._pasted += 1
        return self._paste_dir / f"{stem} {self._pasted}{suffix}"

    def add_item(self, item: PendingAttachment) -> None:
        self.items.append(item)
        chip = AttachmentChip(item)
        chip.removed.connect(self.remove)
        self.chip_row.insertWidget(self.chip_row.count() - 1, chip)
        self.chip_area.show()
        self._update_buttons()
        self.attachment_added.emit(item)
        self.draft_changed.emit()

    def remove(self, key: int) -> None:
        self.items = [i for i in self.items if i.key != key]
        for chip in self.chips():
            if chip.item.key == key:
                chip.deleteLater()
                chip.setParent(None)
        self.chip_area.setVisible(bool(self.items))
        self._update_buttons()
        self.draft_changed.emit()

    def chips(self) -> list[AttachmentChip]:
        return self.chip_area.widget().findChildren(AttachmentChip)

    def refresh_item(self, key: int) -> None:
        """Show what was found out about an attachment (its cost, a problem)."""
        for chip in self.chips():
            if chip.item.key == key:
                chip.refresh()
        self._update_buttons()

    # -- looks ---------------------------------------------------------------------------------

    def _send_or_stop(self) -> None:
        if self.busy:
            self.stop_requested.emit()
        else:
            self.request_send()

    def _text_changed(self) -> None:
        self._update_buttons()
        self.draft_changed.emit()

    def _update_buttons(self) -> None:
        c = theme.current()
        if self.busy:
            self.send_button.setObjectName("StopButton")
            self.send_button.setIcon(icons.icon("stop", c.window, 16))
            self.send_button.setToolTip("Stop the answer (Esc)")
            self.send_button.setAccessibleName("Stop answer")
            self.send_button.setEnabled(True)
        else:
            self.send_button.setObjectName("SendButton")
            self.send_button.setIcon(icons.icon("send", c.accent_text, 18))
            self.send_button.setToolTip("Send (Enter)")
            self.send_button.setAccessibleName("Send message")
            self.send_button.setEnabled(self.can_send())
        self.send_button.style().unpolish(self.send_button)
        self.send_button.style().polish(self.send_button)

    def _restyle(self) -> None:
        self.attach_button.setIcon(icons.icon("attach", size=20))
        self._update_buttons()


def _tool_button(tip: str, name: str) -> QToolButton:
    button = QToolButton()
    button.setToolTip(tip)
    button.setAccessibleName(name)
    button.setIconSize(QSize(20, 20))
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button
