"""The small bar of buttons that floats over the message under the mouse (or the current one)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QToolButton

from app import icons, theme
from app.conversation import Message

ACTIONS = {  # name: (icon, tooltip)
    "copy": ("copy", "Copy this message as text (Ctrl+C)"),
    "edit": ("edit", "Edit this message and send it again"),
    "regenerate": ("regenerate", "Write this answer again"),
    "continue": ("continue", "Continue this answer where it stopped"),
    "delete": ("delete", "Delete this message (Delete)"),
}


def actions_for(message: Message, is_last_answer: bool, busy: bool) -> list[str]:
    """Which actions make sense for a message right now."""
    if message.status == "streaming":
        return ["copy"]
    names = ["copy"]
    if message.role == "user" and not busy:
        names.append("edit")
    if message.role == "model" and is_last_answer and not busy:
        if message.can_continue:
            names.append("continue")
        names.append("regenerate")
    if not busy:
        names.append("delete")
    return names


class MessageActions(QFrame):
    triggered = Signal(str, str)  # action name, message id

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageActions")
        self.message_id = ""
        row = QHBoxLayout(self)
        row.setContentsMargins(3, 2, 3, 2)
        row.setSpacing(1)
        self.buttons: dict[str, QToolButton] = {}
        for name, (_icon, tip) in ACTIONS.items():
            button = QToolButton(self)
            button.setToolTip(tip)
            button.setAccessibleName(name.capitalize())
            button.setIconSize(QSize(16, 16))
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, n=name: self.triggered.emit(n,
                                                                              self.message_id))
            row.addWidget(button)
            self.buttons[name] = button
        theme.notifier.changed.connect(self.restyle)
        self.restyle()
        self.hide()

    def restyle(self) -> None:
        muted = theme.current().muted
        for name, button in self.buttons.items():
            button.setIcon(icons.icon(ACTIONS[name][0], muted, 16))

    def show_for(self, message_id: str, names: list[str]) -> None:
        self.message_id = message_id
        for name, button in self.buttons.items():
            button.setVisible(name in names)
        self.adjustSize()
        self.show()
        self.raise_()
