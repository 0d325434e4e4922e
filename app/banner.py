"""A message above the composer: errors, first-run notes, and choices (with buttons).

The text can be selected and copied; the banner stays until dismissed or replaced, so a person
has time to read it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

from app import icons, theme


class Banner(QFrame):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        self.kind = ""
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 6, 8)
        row.setSpacing(8)
        self.icon = QLabel()
        self.icon.setFixedSize(20, 20)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        self.text = QLabel()
        self.text.setObjectName("BannerText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse |
                                          Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.text.setOpenExternalLinks(False)
        row.addWidget(self.text, 1)
        self.buttons = QHBoxLayout()
        row.addLayout(self.buttons)
        self.close_button = close = QToolButton()
        close.setIconSize(QSize(14, 14))
        close.setToolTip("Dismiss this message")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(lambda: self.dismiss())
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.setAccessibleName("Notice")
        theme.notifier.changed.connect(self._restyle)  # icons are drawn in the theme's colours
        self._restyle()
        self.hide()

    def show_message(self, text: str, level: str = "info", kind: str = "",
                     actions: list[tuple[str, str, Callable[[], None]]] = ()) -> None:
        """Show `text`; `actions` are (label, tooltip, callback) buttons; `kind` names the
        message so that it can be dismissed by whoever raised it."""
        self.kind = kind
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self._draw_level_icon()
        self.text.setText(text)
        self.setAccessibleDescription(text)
        while self.buttons.count():
            widget = self.buttons.takeAt(0).widget()
            widget.deleteLater()
        for i, (label, tip, callback) in enumerate(actions):
            button = QPushButton(label)
            button.setToolTip(tip)
            button.setAccessibleName(label)
            if i == 0:
                button.setObjectName("Primary")
            button.clicked.connect(lambda _checked=False, act=callback: act())  # not act(False)
            self.buttons.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        self.show()

    def set_text(self, text: str) -> None:
        """New text, same buttons: a progress note changes many times while its Stop button
        must stay put under the pointer."""
        self.text.setText(text)
        self.setAccessibleDescription(text)

    def _restyle(self) -> None:
        self.close_button.setIcon(icons.icon("close", size=14))
        self._draw_level_icon()

    def _draw_level_icon(self) -> None:
        c = theme.current()
        name, color = {"error": ("warning", c.danger), "warning": ("warning", c.warning)}.get(
            self.property("level"), ("model", c.accent))
        self.icon.setPixmap(icons.pixmap(name, color, 20))

    def dismiss(self, kind: str | None = None) -> None:
        """Hide the banner (only if it shows `kind`, when given)."""
        if kind is None or kind == self.kind:
            self.hide()
            self.kind = ""
