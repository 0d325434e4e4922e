"""A chip in the composer: thumbnail or file icon, name, size and token cost, remove button."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImageReader, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout

from app import icons, theme
from app.attachments import PendingAttachment, human_size

THUMB = 34


class AttachmentChip(QFrame):
    removed = Signal(int)  # the attachment's key

    def __init__(self, item: PendingAttachment, parent=None) -> None:
        super().__init__(parent)
        self.item = item
        self.setObjectName("Chip")
        self.setFixedHeight(THUMB + 14)
        self.setMaximumWidth(280)
        row = QHBoxLayout(self)
        row.setContentsMargins(7, 7, 4, 7)
        row.setSpacing(8)
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row.addWidget(self.thumb)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.name_label = QLabel()
        self.name_label.setObjectName("ChipName")
        self.detail_label = QLabel()
        self.detail_label.setObjectName("ChipDetail")
        texts.addWidget(self.name_label)
        texts.addWidget(self.detail_label)
        row.addLayout(texts, 1)
        self.remove_button = QToolButton()
        self.remove_button.setIconSize(QSize(14, 14))
        self.remove_button.setToolTip(f"Remove {item.name}")
        self.remove_button.setAccessibleName(f"Remove attachment {item.name}")
        self.remove_button.clicked.connect(lambda: self.removed.emit(item.key))
        row.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        theme.notifier.changed.connect(self._restyle)  # icons are drawn in the theme's colours
        self._restyle()
        self.refresh()

    def _restyle(self) -> None:
        self.remove_button.setIcon(icons.icon("close", size=14))
        self._set_thumbnail()

    def refresh(self) -> None:
        """Show the item's current state (cost counted, error found, note added)."""
        item = self.item
        metrics = self.name_label.fontMetrics()
        self.name_label.setText(metrics.elidedText(item.name, Qt.TextElideMode.ElideMiddle, 180))
        detail = self.detail_label.fontMetrics().elidedText(
            self.detail_text(), Qt.TextElideMode.ElideRight, 190)
        self.detail_label.setText(detail)
        self.setProperty("problem", bool(item.error or item.note))
        self.style().unpolish(self)
        self.style().polish(self)
        tip = f"{item.name}\n{item.path}\n{self.detail_text()}"
        if item.error or item.note:
            tip += f"\n\n{item.error or item.note}"
        self.setToolTip(tip)
        self.setAccessibleName(f"Attachment {item.name}")
        self.setAccessibleDescription(self.detail_text() + (f". {item.error or item.note}"
                                                            if item.error or item.note else ""))

    def detail_text(self) -> str:
        item = self.item
        if item.error:
            return f"Cannot be used: {item.error}"
        parts = [human_size(item.size)]
        if item.page_count:
            parts.append(f"{item.page_count} pages")
        if item.token_cost is None:
            parts.append("counting…")
        else:
            parts.append(f"{item.token_cost:,} tokens")
        if item.note:
            parts.append(item.note)
        return " · ".join(parts)

    def _set_thumbnail(self) -> None:
        c = theme.current()
        if self.item.kind == "image" and not self.item.error:
            reader = QImageReader(str(self.item.path))
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid() and not size.isEmpty():
                ratio = self.devicePixelRatioF()
                box = QSize(int(THUMB * ratio), int(THUMB * ratio))
                fill = Qt.AspectRatioMode.KeepAspectRatioByExpanding
                reader.setScaledSize(size.scaled(box, fill))
                image = reader.read()
                if not image.isNull():
                    pixmap = QPixmap.fromImage(image).copy(0, 0, box.width(), box.height())
                    pixmap.setDevicePixelRatio(ratio)
                    self.thumb.setPixmap(pixmap)
                    return
            self.item.error = self.item.error or "This picture cannot be read."
        name = "warning" if self.item.error else ("image" if self.item.kind == "image" else "file")
        color = c.danger if self.item.error else c.accent
        self.thumb.setPixmap(icons.pixmap(name, color, 24))
