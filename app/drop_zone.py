"""The overlay that shows where dropped files go while something is dragged over the window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout


class DropZone(QFrame):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.setObjectName("DropZone")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        box = QVBoxLayout(self)
        self.label = QLabel("Drop files here to attach them")
        self.label.setObjectName("DropZoneText")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel("Pictures, PDFs, Word documents, text and code files")
        hint.setObjectName("Muted")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        box.addStretch(1)
        box.addWidget(self.label)
        box.addWidget(hint)
        box.addStretch(1)
        self.setAccessibleName("Drop zone")
        self.hide()

    def cover(self) -> None:
        """Show over the whole parent, a little inset."""
        self.setGeometry(self.parentWidget().rect().adjusted(12, 12, -12, -12))
        self.show()
        self.raise_()
