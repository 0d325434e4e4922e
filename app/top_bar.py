"""The strip above the chat: sidebar toggle, chat title, model button with loading progress,
settings."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
)

from app import icons, theme


class TopBar(QFrame):
    sidebar_toggled = Signal()
    models_requested = Signal()
    settings_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("TopBar")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        row = QHBoxLayout()
        row.setContentsMargins(10, 6, 10, 6)
        row.setSpacing(6)
        self.sidebar_button = _button("Show or hide the chat list (Ctrl+B)", "Toggle chat list")
        self.sidebar_button.clicked.connect(self.sidebar_toggled)
        row.addWidget(self.sidebar_button)
        self.title = QLabel("New chat")
        self.title.setAccessibleName("Chat title")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        row.addWidget(self.title, 1)
        self.model_button = QPushButton("Loading model…")
        self.model_button.setObjectName("ModelButton")
        self.model_button.setAccessibleName("Model")
        self.model_button.setToolTip("The model in use; click to choose another (Ctrl+M)")
        self.model_button.setIconSize(QSize(18, 18))
        self.model_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.model_button.clicked.connect(self.models_requested)
        row.addWidget(self.model_button)
        self.settings_button = _button("Settings (Ctrl+,)", "Settings")
        self.settings_button.clicked.connect(self.settings_requested)
        row.addWidget(self.settings_button)
        outer.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(3)
        self.progress.setAccessibleName("Model loading progress")
        outer.addWidget(self.progress)
        theme.notifier.changed.connect(self.restyle)
        self.restyle()

    def restyle(self) -> None:
        self.sidebar_button.setIcon(icons.icon("sidebar", size=20))
        self.settings_button.setIcon(icons.icon("settings", size=20))
        self.model_button.setIcon(icons.icon("model", theme.current().accent, 18))

    def set_title(self, text: str) -> None:
        metrics = self.title.fontMetrics()
        self.title.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, 420))
        self.title.setToolTip(text)

    def show_loading(self, fraction: float, message: str) -> None:
        self.progress.show()
        self.progress.setValue(int(fraction * 1000))
        self.progress.setToolTip(message)
        self.model_button.setText(f"Loading… {int(fraction * 100)}%")

    def show_model(self, info: dict) -> None:
        self.progress.hide()
        if info.get("server"):
            self._show_server(info)
            return
        badges = [] if info["sees_images"] else ["text only"]
        if info.get("base_model"):
            badges.insert(0, "base model")
        name = info["name"].split(" on ")[0]
        self.model_button.setText(f"{name}  ·  {', '.join(badges)}" if badges else name)
        self.model_button.setToolTip(
            f"{info['name']}\nContext: {info['context_length']:,} tokens "
            f"(the model allows {info['max_context']:,})\n"
            f"{'Sees pictures' if info['sees_images'] else 'Cannot see pictures'}\n"
            "Click to choose another model (Ctrl+M)")

    def _show_server(self, info: dict) -> None:
        """A server is never mistaken for this computer: the button says "(server)"."""
        self.model_button.setText(f"{info['name']} (server)")
        read = "reported by the server" if info.get("context_from") == "server" else "as entered"
        self.model_button.setToolTip(
            f"Chats go to {info['server']}: messages, pictures and documents are sent there\n"
            f"Model: {info['name']}\nContext: {info['context_length']:,} tokens ({read})\n"
            "Click to choose another model (Ctrl+M)")

    def show_no_model(self, text: str = "No model loaded") -> None:
        self.progress.hide()
        self.model_button.setText(text)


def _button(tip: str, name: str) -> QToolButton:
    button = QToolButton()
    button.setToolTip(tip)
    button.setAccessibleName(name)
    button.setIconSize(QSize(20, 20))
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button
