"""The window when the chat store fails (a full or read-only disk): the user is told, what was
typed stays in the composer, and the chat is never left busy."""

from __future__ import annotations

import errno

from app.store_db import StoreError
from tests.app_support import FakeClient
from tests.test_app_widgets import FAST, make_window, send  # noqa: F401 - make_window: fixture


def disk_full(*_args, **_kwargs):
    raise StoreError(errno.ENOSPC, "The disk is full")


def test_a_message_that_cannot_be_saved_is_not_sent_and_stays_typed(qtbot, make_window,
                                                                     monkeypatch):
    client = FakeClient("Fine.")
    window = make_window(client)
    monkeypatch.setattr(window.store, "add_message", disk_full)
    window.composer.set_text("Keep me")
    window.composer.request_send()
    assert window.composer.text() == "Keep me" and client.requests == []
    assert window.banner.kind == "store" and "could not be saved" in window.banner.text.text()
    assert not window.chats.busy


def test_an_answer_whose_last_save_fails_leaves_the_chat_usable(qtbot, make_window,
                                                                monkeypatch):
    window = make_window(FakeClient("A full answer."))
    monkeypatch.setattr(window.store, "finish_message", disk_full)
    send(qtbot, window, "Hello")  # waits until the chat is no longer busy
    assert window.banner.kind == "store" and "The disk is full" in window.banner.text.text()
    assert window.chat_model.messages[-1].text == "A full answer."  # still on screen


def test_an_edit_that_cannot_be_saved_keeps_the_turns_it_would_replace(qtbot, make_window,
                                                                      monkeypatch):
    window = make_window(FakeClient("Answer."))
    send(qtbot, window, "first")
    first = window.chat_model.messages[0]
    window.chats.act("edit", first.id)
    window.composer.set_text("changed")
    monkeypatch.setattr(window.store, "add_message", disk_full)
    window.composer.request_send()
    stored = window.store.get_conversation(window.chats.conversation.id).messages
    assert [m.text for m in stored] == ["first", "Answer."]
    assert [m.text for m in window.chat_model.messages] == ["first", "Answer."]
    assert window.composer.text() == "changed"
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
