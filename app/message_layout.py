"""Where each part of a chat row goes, for painting and for hit tests (mouse clicks, tooltips).

A layout depends on the message's revision, the view's width and the theme, and is cached on
exactly that: scrolling and repainting a long chat reuse layouts instead of laying out text.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QFont,
    QFontMetrics,
    QImageIOHandler,
    QImageReader,
    QPixmap,
    QTextDocument,
    QTextTable,
)

from app import theme
from app.chat_model import Row, stats_line
from app.conversation import Message
from app.markdown_render import (
    CODE_BODY_PAD,
    CODE_HEAD_PAD,
    Rendered,
    render_markdown,
    render_plain,
)

COLUMN = 780  # widest text column: long lines are hard to read
SIDE = 28  # margin left and right of the column
AVATAR = 28
GAP = 10
THUMB_H, THUMB_W = 132, 200
CHIP_H, CHIP_W = 44, 240
FOOTER = 30  # the stats line, and room for the actions bar
BUBBLE_PAD_X, BUBBLE_PAD_Y = 14, 10


@dataclass
class Layout:
    height: int
    doc: QTextDocument | None = None
    rendered: Rendered | None = None
    text_rect: QRect = field(default_factory=QRect)  # where the document is drawn
    bubble: QRect = field(default_factory=QRect)  # user messages: the rounded background
    avatar: QRect = field(default_factory=QRect)
    thumbs: list[tuple[QRect, Message, int]] = field(default_factory=list)  # rect, msg, index
    chips: list[tuple[QRect, Message, int]] = field(default_factory=list)
    footer: QRect = field(default_factory=QRect)
    footer_text: str = ""
    code_cards: list[tuple[QRectF, float]] = field(default_factory=list)  # card, header bottom


class LayoutCache:
    """Layouts (with their text documents) for the rows on screen lately, and the height of
    every row ever measured: a relayout of a long chat asks for heights only."""

    def __init__(self, limit: int = 300) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple, Layout] = OrderedDict()
        self._heights: dict[tuple, int] = {}
        self.last_build_s = 0.0  # how long the latest layout took (streaming adapts to it)

    @staticmethod
    def key(row: Row, revision: int, inner: int, progress: str, font: QFont) -> tuple:
        name = row.message.id if row.message else row.text
        return row.kind, name, revision, inner, progress, theme.current().name, font.key()

    def get(self, row: Row, revision: int, inner: int, progress: str, font: QFont) -> Layout:
        key = self.key(row, revision, inner, progress, font)
        found = self._items.get(key)
        if found is None:
            started = time.perf_counter()
            found = build(row, inner, progress, font)
            self.last_build_s = time.perf_counter() - started
            self._items[key] = found
            self._heights[key] = found.height
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return found

    def height(self, row: Row, revision: int, inner: int, progress: str, font: QFont) -> int:
        key = self.key(row, revision, inner, progress, font)
        known = self._heights.get(key)
        return known if known is not None else self.get(row, revision, inner, progress,
                                                        font).height

    def clear(self) -> None:
        self._items.clear()
        self._heights.clear()


def column(width: int) -> tuple[int, int]:
    """(left, width) of the centred text column in a view `width` wide."""
    inner = max(200, min(COLUMN, width - 2 * SIDE))
    return max(SIDE, (width - inner) // 2), inner


def build(row: Row, inner: int, progress: str, font: QFont) -> Layout:
    """The layout of a row in a text column `inner` wide; x is relative to the column."""
    if row.kind == "dropped":
        return Layout(height=QFontMetrics(font).height() + 28)
    if row.kind == "system":
        return _system(row.text, inner, font)
    if row.message.role == "user":
        return _user(row.message, inner, font)
    return _model(row.message, inner, progress, font)


def _document(rendered: Rendered, font: QFont, text_width: int) -> QTextDocument:
    doc = QTextDocument()
    doc.setDefaultFont(font)
    doc.setDocumentMargin(0)
    doc.setHtml(rendered.html)
    doc.setTextWidth(text_width)
    return doc


def _attachments(message: Message, left: int, inner: int, top: int, right_align: bool,
                 layout: Layout) -> int:
    """Place thumbnails and document chips in rows; returns the y below them."""
    y, items = top, []
    for i, a in enumerate(message.attachments):
        size = thumb_size(str(a.path)) if a.kind == "image" else QSize(CHIP_W, CHIP_H)
        items.append((size, i, a.kind))
    x, line_h, placed = 0, 0, []
    for size, i, kind in items:
        if x and x + size.width() > inner:
            y, x, line_h = y + line_h + GAP, 0, 0
        placed.append((QRect(x, y, size.width(), size.height()), i, kind))
        x, line_h = x + size.width() + GAP, max(line_h, size.height())
    for rect, i, kind in placed:
        shift = left + (inner - _row_width(placed, rect.y()) if right_align else 0)
        target = layout.thumbs if kind == "image" else layout.chips
        target.append((rect.translated(shift, 0), message, i))
    return y + line_h + (GAP if placed else 0)


def _row_width(placed, y: int) -> int:
    same = [rect for rect, _, _ in placed if rect.y() == y]
    return max(r.right() for r in same) + 1


def _user(message: Message, inner: int, font: QFont) -> Layout:
    left = 0
    layout = Layout(height=0)
    y = _attachments(message, left, inner, 12, True, layout)
    rendered = render_plain(message.text, theme.current())
    max_text = int(inner * 0.78) - 2 * BUBBLE_PAD_X
    doc = _document(rendered, font, max_text)
    text_w = min(max_text, int(doc.idealWidth()) + 2)
    doc.setTextWidth(text_w)
    text_h = int(doc.size().height())
    bubble_w = text_w + 2 * BUBBLE_PAD_X
    if message.text:
        layout.bubble = QRect(left + inner - bubble_w, y, bubble_w, text_h + 2 * BUBBLE_PAD_Y)
        layout.text_rect = QRect(layout.bubble.x() + BUBBLE_PAD_X, y + BUBBLE_PAD_Y, text_w,
                                 text_h)
        y = layout.bubble.bottom() + 1
    layout.doc, layout.rendered = doc, rendered
    layout.footer = QRect(left, y + 2, inner, FOOTER)
    layout.height = layout.footer.bottom() + 4
    return layout


def _model(message: Message, inner: int, progress: str, font: QFont) -> Layout:
    left = 0
    layout = Layout(height=0)
    layout.avatar = QRect(left, 12, AVATAR, AVATAR)
    text_left = left + AVATAR + 12
    text_w = inner - AVATAR - 12
    y = _attachments(message, text_left, text_w, 14, False, layout)
    rendered = render_markdown(message.text, theme.current())
    doc = _document(rendered, font, text_w)
    text_h = max(int(doc.size().height()), QFontMetrics(font).height())
    layout.doc, layout.rendered = doc, rendered
    layout.code_cards = code_cards(doc) if rendered.code_blocks else []
    layout.text_rect = QRect(text_left, y + 4, text_w, text_h)
    layout.footer_text = progress or stats_line(message)
    layout.footer = QRect(text_left, layout.text_rect.bottom() + 6, text_w, FOOTER)
    layout.height = layout.footer.bottom() + 10
    return layout


def _system(text: str, inner: int, font: QFont) -> Layout:
    left = 0
    rendered = render_plain(text, theme.current())
    doc = _document(rendered, font, inner - 28)
    height = int(doc.size().height())
    label = QFontMetrics(font).height()
    layout = Layout(height=height + label + 44, doc=doc, rendered=rendered)
    layout.bubble = QRect(left, 12, inner, height + label + 26)
    layout.text_rect = QRect(left + 14, 12 + 10 + label + 4, inner - 28, height)
    return layout


def code_cards(doc: QTextDocument) -> list[tuple[QRectF, float]]:
    """Rectangles of the code blocks (borderless tables) in document coordinates, each with the
    y of the line under its header row. Measured from the cells' text blocks: Qt's own frame
    rectangle of a table is offset by the cell padding."""
    cards = []
    layout = doc.documentLayout()
    for frame in doc.rootFrame().childFrames():
        if not isinstance(frame, QTextTable) or frame.format().border() > 0:
            continue
        head = layout.blockBoundingRect(frame.cellAt(0, 0).firstCursorPosition().block())
        body = frame.cellAt(1, 0)
        first = layout.blockBoundingRect(body.firstCursorPosition().block())
        last = layout.blockBoundingRect(body.lastCursorPosition().block())
        top, bottom = head.top() - CODE_HEAD_PAD, last.bottom() + CODE_BODY_PAD
        cards.append((QRectF(0, top, doc.textWidth(), bottom - top), first.top() - CODE_BODY_PAD))
    return cards


@lru_cache(maxsize=256)
def thumb_size(path: str) -> QSize:
    reader = QImageReader(path)
    size = reader.size()
    if not size.isValid() or size.isEmpty():
        return QSize(THUMB_H, THUMB_H)  # unreadable: a square placeholder
    if _turned(reader):
        size.transpose()  # a phone's portrait photo is stored landscape, with an EXIF turn
    scaled = size.scaled(QSize(THUMB_W, THUMB_H), Qt.AspectRatioMode.KeepAspectRatio)
    return scaled.expandedTo(QSize(48, 48))


def _turned(reader: QImageReader) -> bool:
    return bool(reader.transformation() & QImageIOHandler.Transformation.TransformationRotate90)


@lru_cache(maxsize=128)
def thumbnail(path: str, width: int, height: int, ratio: float) -> QPixmap | None:
    """A decoded, downscaled picture (the reader decodes at the small size directly)."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    scaled = QSize(int(width * ratio), int(height * ratio))
    if _turned(reader):
        scaled.transpose()  # the reader scales the picture as stored, then turns it
    reader.setScaledSize(scaled)
    image = reader.read()
    if image.isNull():
        return None
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap
