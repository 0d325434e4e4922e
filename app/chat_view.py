"""The chat: a list view over ChatModel, painted by MessageDelegate.

Only visible rows are painted and layouts are cached, so a long chat scrolls smoothly. The view
sticks to the bottom while an answer streams unless the user scrolled up; scrolling near the top
loads older messages without moving what is on screen.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QKeySequence, QPainter
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu, QToolTip

from app import theme
from app.chat_model import PAGE, ChatModel, MessageRole
from app.image_viewer import ImageViewer
from app.markdown_render import COPY_CODE
from app.message_actions import ACTIONS, MessageActions, actions_for
from app.message_delegate import MessageDelegate

LOAD_MARGIN = 300  # pixels from the top at which older messages are loaded
TRIM_ROWS = 3 * PAGE  # back at the end of a chat with more rows than this, older ones go


class ChatView(QListView):
    action_requested = Signal(str, str)  # action name, message id
    notice = Signal(str)  # a short status-bar message ("Code copied")

    def __init__(self, model: ChatModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatView")
        self.setAccessibleName("Chat messages")
        self.setAccessibleDescription("Messages of this chat, oldest first. Use the arrow keys "
                                      "to move between them and the context menu for actions.")
        self.setModel(model)
        self.chat = model
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        triggers = QAbstractItemView.EditTrigger
        self.setEditTriggers(triggers.DoubleClicked | triggers.EditKeyPressed)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(False)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.busy = False
        self.empty_text = ""  # shown centred while the chat has no messages
        self.keyboard_focus = False  # the focus ring is drawn for keyboard users only
        self._stick = True
        self._anchor: tuple[int, int] | None = None  # (max, value) before older rows came
        self.actions_bar = MessageActions(self.viewport())
        self.actions_bar.triggered.connect(self.action_requested)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)
        model.modelReset.connect(self._reset)
        model.rowsInserted.connect(lambda *_: self._hide_actions())
        model.dataChanged.connect(self._data_changed)
        theme.notifier.changed.connect(self.relayout)

    # -- keeping the view where the user wants it ------------------------------------------------

    def relayout(self) -> None:
        self.delegate.cache.clear()
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    def reveal(self, message_id: str) -> None:
        """Scroll to a message (loading older pages as needed) and make it current."""
        while self.chat.row_of(message_id) < 0 and self.chat.has_earlier():
            self.chat.load_earlier()
        row = self.chat.row_of(message_id)
        if row >= 0:
            self._stick = False
            self.doItemsLayout()
            index = self.chat.index(row)
            self.setCurrentIndex(index)
            self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
            self.keyboard_focus = True
            self.setFocus()

    def scroll_to_end(self) -> None:
        self._stick = True
        self.scrollToBottom()

    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - 8
        if self._stick and self.chat.rowCount() > TRIM_ROWS and self._anchor is None:
            QTimer.singleShot(0, self.chat.trim_to_last_page)
        margin = max(LOAD_MARGIN, self.viewport().height())  # a screen ahead of the user
        if value < margin and self.chat.has_earlier() and self._anchor is None:
            self._anchor = (bar.maximum(), value)
            QTimer.singleShot(0, self.chat.load_earlier)
        self._place_actions_at_cursor()

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        bar = self.verticalScrollBar()
        if self._anchor is not None and maximum != self._anchor[0]:
            old_max, old_value = self._anchor
            self._anchor = None
            bar.setValue(old_value + maximum - old_max)
        elif self._stick:
            bar.setValue(maximum)

    def _reset(self) -> None:
        self._hide_actions()
        self._anchor = None
        self._stick = True
        QTimer.singleShot(0, self.scrollToBottom)
        QTimer.singleShot(0, self._place_actions_at_cursor)

    def _data_changed(self, top: QModelIndex, bottom: QModelIndex, roles=()) -> None:
        for row in range(top.row(), bottom.row() + 1):
            self.delegate.sizeHintChanged.emit(self.chat.index(row))

    # -- actions bar ---------------------------------------------------------------------------

    def refresh_actions(self) -> None:
        self._place_actions_at_cursor()

    def _place_actions_at_cursor(self) -> None:
        pos = self.viewport().mapFromGlobal(self.cursor().pos())
        if self.viewport().rect().contains(pos) and self.indexAt(pos).isValid():
            self._show_actions(self.indexAt(pos))
        elif self.hasFocus():
            self._show_actions(self.currentIndex())
        else:
            self._rest_actions()

    def _rest_actions(self) -> None:
        """With the mouse elsewhere, the bar stays on an answer cut short (by a crash, Stop or
        an error), so that its Continue button is in sight, not only under the pointer."""
        index = self.chat.index(self.chat.row_of(self.last_answer_id()))
        message = index.data(MessageRole) if index.isValid() else None
        if message is not None and message.can_continue and not self.busy:
            self._show_actions(index)
        else:
            self._hide_actions()

    def _show_actions(self, index: QModelIndex) -> None:
        message = index.data(MessageRole) if index.isValid() else None
        if message is None:
            self._hide_actions()
            return
        names = actions_for(message, message.id == self.last_answer_id(), self.busy)
        self.actions_bar.show_for(message.id, names)
        anchor = self.delegate.actions_anchor(index, self.visualRect(index))
        size = self.actions_bar.sizeHint()
        x = anchor.right() - size.width()
        y = anchor.center().y() - size.height() // 2
        self.actions_bar.move(x, y)

    def _hide_actions(self) -> None:
        self.actions_bar.hide()

    def is_selecting(self, message_id: str) -> bool:
        """True while this message's text is open for selection (its editor draws the text)."""
        index = self.currentIndex()
        message = index.data(MessageRole) if index.isValid() else None
        return self.state() == QAbstractItemView.State.EditingState and message is not None \
            and message.id == message_id

    def select_text(self, message_id: str) -> None:
        row = self.chat.row_of(message_id)
        if row >= 0:
            self.setCurrentIndex(self.chat.index(row))
            self.edit(self.chat.index(row))

    def edit(self, index, trigger=None, event=None) -> bool:
        message = index.data(MessageRole) if index.isValid() else None
        if message is None or message.status == "streaming":
            return False  # markers have no text to select; a streaming answer still moves
        if trigger is None:
            return super().edit(index)
        return super().edit(index, trigger, event)

    def last_answer_id(self) -> str:
        answers = [m for m in self.chat.messages if m.role == "model"]
        last = self.chat.messages[-1] if self.chat.messages else None
        return answers[-1].id if answers and last is answers[-1] else ""

    # -- mouse and keyboard --------------------------------------------------------------------

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        index = self.indexAt(event.position().toPoint())
        if index.isValid():
            self._show_actions(index)
        else:
            self._rest_actions()
        hit = self._hit(event.position().toPoint())
        shape = Qt.CursorShape.PointingHandCursor if hit else Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        if not self.actions_bar.underMouse() and not self.hasFocus():
            self._rest_actions()

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.activate(self._hit(event.position().toPoint()))

    def activate(self, hit) -> None:
        """Act on a click: enlarge a picture, open a file, copy a code block, follow a link."""
        if hit is None:
            return
        if hit[0] == "image":
            attachment = hit[1].attachments[hit[2]]
            ImageViewer(str(attachment.path), attachment.name, self.window()).show()
        elif hit[0] == "file":
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(hit[1].attachments[hit[2]].path)))
        elif hit[1].startswith(COPY_CODE):
            self.copy_code(hit)
        elif hit[1].startswith(("http://", "https://")):
            QDesktopServices.openUrl(QUrl(hit[1]))

    def copy_code(self, hit) -> None:
        _link, href, index = hit
        layout = self.delegate.layout_for(index)
        QGuiApplication.clipboard().setText(layout.rendered.code_blocks[int(href[len(COPY_CODE):])])
        self.notice.emit("Code copied to the clipboard")

    def _hit(self, pos: QPoint):
        index = self.indexAt(pos)
        if not index.isValid():
            return None
        hit = self.delegate.hit(index, self.visualRect(index), pos)
        if hit is not None and hit[0] == "link":
            return ("link", hit[1], index)
        return hit

    def viewportEvent(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            hit = self._hit(event.pos())
            tip = _tooltip(hit)
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.chat.rowCount() == 0 and self.empty_text:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.current().muted))
            rect = self.viewport().rect().adjusted(40, 0, -40, -40)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.empty_text)

    def mousePressEvent(self, event) -> None:
        self.keyboard_focus = False
        super().mousePressEvent(event)

    def keyPressEvent(self, event) -> None:
        self.keyboard_focus = True
        message = self.currentIndex().data(MessageRole)
        if message is not None and event.matches(QKeySequence.StandardKey.Copy):
            self.action_requested.emit("copy", message.id)
            return
        if message is not None and event.key() == Qt.Key.Key_Delete and not self.busy:
            self.action_requested.emit("delete", message.id)
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event) -> None:
        super().focusInEvent(event)
        if event.reason() in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason):
            self.keyboard_focus = True
        if not self.currentIndex().isValid() and self.chat.rowCount():
            self.setCurrentIndex(self.chat.index(self.chat.rowCount() - 1))

    def currentChanged(self, current, previous) -> None:
        super().currentChanged(current, previous)
        if self.hasFocus():
            self._show_actions(current)

    def contextMenuEvent(self, event) -> None:
        index = self.indexAt(event.pos())
        message = index.data(MessageRole) if index.isValid() else None
        if message is None:
            return
        menu = QMenu(self)
        menu.addAction("Select text", lambda: self.select_text(message.id))
        for name in actions_for(message, message.id == self.last_answer_id(), self.busy):
            text = ACTIONS[name][1].split(" (")[0]
            menu.addAction(text, lambda n=name: self.action_requested.emit(n, message.id))
        menu.exec(event.globalPos())


def _tooltip(hit) -> str:
    if hit is None:
        return ""
    if hit[0] == "image":
        return f"{hit[1].attachments[hit[2]].name}: click to enlarge"
    if hit[0] == "file":
        return f"{hit[1].attachments[hit[2]].name}: click to open"
    if hit[1].startswith(COPY_CODE):
        return "Copy this code"
    return hit[1]
