"""The context meter in the status bar: how much of the model's context the next message uses.

A segmented bar (the chat so far, attachments, the message being written, room kept for the
answer) and a label with the numbers. When the next message will not fit, it turns red and says
by how much; the window then offers the choices (drop the oldest turns, or a new chat).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from app import theme


@dataclass
class Usage:
    context_length: int = 0
    history: int = 0  # tokens of the chat so far (what the model is sent before the new message)
    draft: int = 0  # the message being written, text only
    attachments: list[tuple[str, int]] = field(default_factory=list)  # (name, tokens) per file
    reserve: int = 0  # kept free for the answer

    @property
    def files(self) -> int:
        return sum(tokens for _name, tokens in self.attachments)

    @property
    def used(self) -> int:
        return self.history + self.draft + self.files

    @property
    def overflow(self) -> int:
        """Tokens too many for the next message and its answer (0 when it fits)."""
        return max(0, self.used + self.reserve - self.context_length) if self.context_length else 0


class MeterBar(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.usage = Usage()
        self.setFixedSize(QSize(140, 8))

    def paintEvent(self, _event) -> None:
        c, u = theme.current(), self.usage
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(c.raised))
        painter.drawRoundedRect(QRectF(self.rect()), 4, 4)
        if not u.context_length:
            return
        x, width = 0.0, float(self.width())
        parts = [(u.history, c.meter_chat), (u.files, c.meter_files), (u.draft, c.meter_draft)]
        if u.overflow:
            parts = [(u.context_length, c.danger)]
        for tokens, color in parts:
            w = min(width - x, width * tokens / u.context_length)
            if w > 0:
                painter.setBrush(QColor(color))
                painter.drawRoundedRect(QRectF(x, 0, max(w, 3), self.height()), 4, 4)
                x += w


class ContextMeter(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 0, 8, 0)
        row.setSpacing(8)
        self.bar = MeterBar()
        self.label = QLabel("No model loaded")
        row.addWidget(self.bar)
        row.addWidget(self.label)
        self.setAccessibleName("Context use")
        self.set_usage(Usage())

    @property
    def usage(self) -> Usage:
        return self.bar.usage

    def set_usage(self, usage: Usage) -> None:
        self.bar.usage = usage
        self.label.setText(self.summary())
        c = theme.current()
        self.label.setStyleSheet(f"color: {c.danger};" if usage.overflow else "")
        tip = self.details()
        self.setToolTip(tip)
        self.bar.setToolTip(tip)
        self.setAccessibleDescription(f"{self.summary()}. {tip}")
        self.bar.update()

    def summary(self) -> str:
        u = self.usage
        if not u.context_length:
            return "Context: waiting for the model"
        text = f"{u.used:,} / {u.context_length:,} tokens"
        if u.overflow:
            text += f" · {u.overflow:,} too many"
        return text

    def details(self) -> str:
        u = self.usage
        if not u.context_length:
            return "The context meter shows how much of the model's memory this chat uses."
        lines = [f"Chat so far: {u.history:,} tokens", f"Your message: {u.draft:,} tokens"]
        lines += [f"{name}: {tokens:,} tokens ({_share(tokens, u.context_length)})"
                  for name, tokens in u.attachments]
        lines.append(f"Kept free for the answer: {u.reserve:,} tokens")
        lines.append(f"Context length: {u.context_length:,} tokens")
        if u.overflow:
            lines.append(f"The next message does not fit: {u.overflow:,} tokens too many.")
        return "\n".join(lines)


def _share(tokens: int, total: int) -> str:
    share = 100 * tokens / total
    return f"{share:.1f}% of the context" if share < 10 else f"{share:.0f}% of the context"
