"""The Qt list model over the store: order, roles, refresh that keeps rows in place."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.conversation_list_model import (
    ConversationListModel,
    FolderRole,
    IdRole,
    PinnedRole,
    UpdatedRole,
)
from app.sidebar import Sidebar
from app.store import Store


@pytest.fixture
def store():
    with Store() as opened:
        yield opened


def titles(model) -> list[str]:
    return [model.index(row).data() for row in range(model.rowCount())]


def test_model_shows_the_store_in_order(qtmodeltester, store):
    older = store.create_conversation("Older")
    newer = store.create_conversation()
    store.add_message(newer.id, "user", "Newer chat about kites")
    model = ConversationListModel(store)
    qtmodeltester.check(model)
    assert titles(model) == ["Newer chat about kites", "Older"]
    first = model.index(0)
    assert first.data(IdRole) == newer.id and first.data(PinnedRole) is False
    assert first.data(UpdatedRole) >= model.index(1).data(UpdatedRole)
    assert model.row_of(older.id) == 1 and model.row_of("gone") == -1
    assert model.conversation_at(1).id == older.id


def test_refresh_follows_pins_renames_folders_and_deletes(qtbot, store):
    a, b = store.create_conversation("A"), store.create_conversation("B")
    model = ConversationListModel(store)
    store.rename(a.id, "A renamed")
    with qtbot.waitSignal(model.dataChanged), qtbot.assertNotEmitted(model.modelReset):
        model.refresh()  # same rows, same order: updated in place
    assert titles(model) == ["B", "A renamed"]
    store.set_pinned(a.id, True)
    with qtbot.waitSignal(model.modelReset):
        model.refresh()
    assert titles(model) == ["A renamed", "B"]
    assert model.index(0).data(PinnedRole) is True
    assert model.index(0).data(Qt.ItemDataRole.AccessibleTextRole) == "Pinned: A renamed"
    store.set_folder(b.id, "Work")
    model.set_folder("Work")
    assert titles(model) == ["B"] and model.index(0).data(FolderRole) == "Work"
    store.delete_conversation(b.id)
    model.refresh()
    assert model.rowCount() == 0


def test_a_long_title_gives_the_chat_list_no_sideways_scroll_bar(qtbot, store):
    store.create_conversation("Summarise this file in three bullet points, then compare them")
    sidebar = Sidebar(store)
    qtbot.addWidget(sidebar)
    sidebar.resize(265, 400)
    sidebar.show()
    sidebar.refresh()
    qtbot.waitExposed(sidebar)
    assert sidebar.list.visualRect(sidebar.chats.index(0)).width() > sidebar.list.width()
    assert not sidebar.list.horizontalScrollBar().isVisible()
