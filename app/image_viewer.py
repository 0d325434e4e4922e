"""A picture from the chat at full size (scaled down to the screen when larger)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImageReader, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QDialog, QLabel, QScrollArea, QVBoxLayout


class ImageViewer(QDialog):
    def __init__(self, path: str, title: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(f"Picture {title}")
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        image = reader.read()
        label = QLabel()
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setAccessibleName(title)
        if image.isNull():
            label.setText(f"This picture cannot be shown: {reader.errorString()}")
        else:
            screen = QGuiApplication.primaryScreen().availableGeometry()
            pixmap = QPixmap.fromImage(image)
            if pixmap.width() > screen.width() * 0.9 or pixmap.height() > screen.height() * 0.85:
                pixmap = pixmap.scaled(int(screen.width() * 0.9), int(screen.height() * 0.85),
                                       Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            label.setPixmap(pixmap)
            label.setToolTip(f"{title} ({image.width()} × {image.height()}); Esc closes")
        area = QScrollArea()
        area.setWidget(label)
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(area)
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, self.close)
        hint = label.sizeHint()
        self.resize(max(320, hint.width() + 4), max(240, hint.height() + 4))
