"""Paints chat rows (bubbles, answers, pictures, file chips, markers) from cached layouts."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFontMetrics,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPalette,
)
from PySide6.QtWidgets import QFrame, QStyle, QStyledItemDelegate, QTextBrowser

from app import icons, theme
from app.attachments import human_size
from app.chat_model import KindRole, MessageRole, RevisionRole
from app.message_layout import Layout, LayoutCache, column, thumbnail


class MessageDelegate(QStyledItemDelegate):
    def __init__(self, view) -> None:
        super().__init__(view)
        self.view = view
        self.cache = LayoutCache()

    # -- geometry ------------------------------------------------------------------------------

    def _key_parts(self, index):
        model = index.model()
        row = model.row_at(index.row())
        message = row.message
        progress = model.progress.get(message.id, "") if message else ""
        _left, inner = column(self.view.viewport().width())
        return row, index.data(RevisionRole), inner, progress, self.view.font()

    def layout_for(self, index) -> Layout:
        """The row's layout, in coordinates relative to the text column (see `left`)."""
        return self.cache.get(*self._key_parts(index))

    def left(self) -> int:
        return column(self.view.viewport().width())[0]

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.view.viewport().width(), self.cache.height(*self._key_parts(index)))

    def hit(self, index, rect: QRect, pos: QPoint):
        """What is under `pos`: ("image"|"file", message, i), ("link", href), or None."""
        layout = self.layout_for(index)
        local = pos - rect.topLeft() - QPoint(self.left(), 0)
        for kind, items in (("image", layout.thumbs), ("file", layout.chips)):
            for r, message, i in items:
                if r.contains(local):
                    return kind, message, i
        if layout.doc is not None and layout.text_rect.contains(local):
            inside = local - layout.text_rect.topLeft()
            href = layout.doc.documentLayout().anchorAt(inside.toPointF())
            if href:
                return "link", href
        return None

    def actions_anchor(self, index, rect: QRect) -> QRect:
        """Where the message's actions bar goes (the right end of its footer)."""
        return self.layout_for(index).footer.translated(rect.topLeft() + QPoint(self.left(), 0))

    # -- selecting text: a read-only copy of the row's text over it, opened by double-click --

    def createEditor(self, parent, option, index):
        layout = self.layout_for(index)
        if layout.doc is None or layout.text_rect.isEmpty():
            return None
        editor = QTextBrowser(parent)
        editor.setObjectName("SelectableText")
        editor.setFrameShape(QFrame.Shape.NoFrame)
        editor.setOpenLinks(False)
        editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setStyleSheet("background: transparent; border: none;")
        editor.document().setDocumentMargin(0)
        editor.document().setDefaultFont(self.view.font())
        editor.setHtml(layout.rendered.html)
        editor.setAccessibleName("Message text, select to copy")
        editor.setToolTip("Select text to copy it (Ctrl+C); Esc or a click elsewhere closes")
        return editor

    def updateEditorGeometry(self, editor, option, index) -> None:
        rect = self.layout_for(index).text_rect
        editor.setGeometry(rect.translated(option.rect.topLeft() + QPoint(self.left(), 0)))

    def setEditorData(self, editor, index) -> None:
        pass  # set once in createEditor; streaming rows are not opened

    def setModelData(self, editor, model, index) -> None:
        pass  # read only

    # -- painting ------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option, index) -> None:
        layout = self.layout_for(index)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.translate(option.rect.topLeft())
        kind = index.data(KindRole)
        if kind == "dropped":
            self._paint_dropped(painter, option.rect.width(), layout, index.data())
            painter.restore()
            return
        painter.translate(self.left(), 0)
        if kind == "system":
            self._paint_system(painter, layout)
        else:
            self._paint_message(painter, layout, index.data(MessageRole))
        if option.state & QStyle.StateFlag.State_HasFocus and self.view.hasFocus() and \
                self.view.keyboard_focus:
            self._paint_focus(painter, layout, column(option.rect.width())[1])
        painter.restore()

    def _paint_message(self, painter: QPainter, layout: Layout, message) -> None:
        c = theme.current()
        if message.role == "user" and not layout.bubble.isEmpty():
            _rounded(painter, layout.bubble, 16, QColor(c.user_bubble))
        if message.role == "model":
            self._paint_avatar(painter, layout.avatar, message.status == "streaming")
        for rect, msg, i in layout.thumbs:
            self._paint_thumb(painter, rect, str(msg.attachments[i].path))
        for rect, msg, i in layout.chips:
            self._paint_chip(painter, rect, msg.attachments[i])
        if not self.view.is_selecting(message.id):
            self._draw_doc(painter, layout)
        if layout.footer_text:
            color = c.danger if message.status == "error" else c.muted
            self._paint_footer(painter, layout.footer, layout.footer_text, color)

    def _draw_doc(self, painter: QPainter, layout: Layout) -> None:
        if layout.doc is None or layout.text_rect.isEmpty():
            return
        painter.save()
        painter.translate(layout.text_rect.topLeft())
        self._paint_code_cards(painter, layout)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette.setColor(QPalette.ColorRole.Text, QColor(theme.current().text))
        layout.doc.documentLayout().draw(painter, context)
        painter.restore()

    def _paint_code_cards(self, painter: QPainter, layout: Layout) -> None:
        c = theme.current()
        for rect, header_bottom in layout.code_cards:
            painter.setPen(QColor(c.code_border))
            painter.setBrush(QColor(c.code_bg))
            painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 8, 8)
            painter.drawLine(QPointF(rect.left() + 1, header_bottom),
                             QPointF(rect.right() - 1, header_bottom))

    def _paint_avatar(self, painter: QPainter, rect: QRect, busy: bool) -> None:
        gradient = QLinearGradient(rect.topLeft(), rect.bottomRight())
        gradient.setColorAt(0, QColor("#4f7cff"))
        gradient.setColorAt(1, QColor("#9b6bff" if not busy else "#2bc4a0"))
        painter.save()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawEllipse(rect)
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "G")
        painter.restore()

    def _paint_thumb(self, painter: QPainter, rect: QRect, path: str) -> None:
        c = theme.current()
        ratio = self.view.devicePixelRatioF()
        pixmap = thumbnail(path, rect.width(), rect.height(), ratio)
        clip = QPainterPath()
        clip.addRoundedRect(QRectF(rect), 10, 10)
        painter.save()
        painter.setClipPath(clip)
        if pixmap is None:
            painter.fillRect(rect, QColor(c.raised))
            warning = icons.pixmap("warning", c.danger, 24)
            painter.drawPixmap(rect.center() - QPoint(12, 12), warning)
        else:
            painter.drawPixmap(rect, pixmap)
        painter.restore()
        painter.setPen(QColor(c.border))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5), 10, 10)

    def _paint_chip(self, painter: QPainter, rect: QRect, attachment) -> None:
        c = theme.current()
        _rounded(painter, rect, 10, QColor(c.raised), QColor(c.border))
        painter.drawPixmap(rect.x() + 10, rect.y() + (rect.height() - 22) // 2,
                           icons.pixmap("file", c.accent, 22))
        font = painter.font()
        metrics = QFontMetrics(font)
        text_rect = rect.adjusted(40, 5, -10, -5)
        painter.setPen(QColor(c.text))
        name = metrics.elidedText(attachment.name, Qt.TextElideMode.ElideMiddle, text_rect.width())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft, name)
        detail = human_size(attachment.size)
        if attachment.token_cost:
            detail += f" · {attachment.token_cost:,} tokens"
        if attachment.page_count:
            detail += f" · {attachment.page_count} pages"
        small = painter.font()
        small.setPointSizeF(max(font.pointSizeF() - 1.5, 7))
        painter.setFont(small)
        painter.setPen(QColor(c.muted))
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                         detail)
        painter.setFont(font)

    def _paint_footer(self, painter: QPainter, rect: QRect, text: str, color: str) -> None:
        font = painter.font()
        small = painter.font()
        small.setPointSizeF(max(font.pointSizeF() - 1.5, 7))
        painter.setFont(small)
        painter.setPen(QColor(color))
        metrics = QFontMetrics(small)
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, rect.width() - 170)
        painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, shown)
        painter.setFont(font)

    def _paint_dropped(self, painter: QPainter, width: int, layout: Layout, text: str) -> None:
        c = theme.current()
        metrics = QFontMetrics(painter.font())
        y = layout.height // 2
        text_w = min(metrics.horizontalAdvance(text), width - 140)
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, text_w)
        left = (width - text_w) // 2
        painter.setPen(QColor(c.warning))
        painter.drawLine(40, y, left - 12, y)
        painter.drawLine(left + text_w + 12, y, width - 40, y)
        painter.drawText(QRect(left, 0, text_w, layout.height), Qt.AlignmentFlag.AlignCenter,
                         shown)

    def _paint_system(self, painter: QPainter, layout: Layout) -> None:
        c = theme.current()
        _rounded(painter, layout.bubble, 12, QColor(c.surface), QColor(c.border))
        painter.setPen(QColor(c.muted))
        label = layout.bubble.adjusted(14, 10, -14, 0)
        painter.drawText(label, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
                         "Instructions for this chat")
        self._draw_doc(painter, layout)

    def _paint_focus(self, painter: QPainter, layout: Layout, width: int) -> None:
        pen = QColor(theme.current().accent)
        pen.setAlpha(140)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(QRectF(-12, 2, width + 24, layout.height - 4), 10, 10)


def _rounded(painter: QPainter, rect: QRect, radius: float, fill: QColor,
             border: QColor | None = None) -> None:
    painter.setPen(border if border is not None else Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)
