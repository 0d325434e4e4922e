"""The window when the chat store fails (a full or read-only disk): the user is told, what was
typed stays in the composer, and the chat is never left busy."""

from __future__ import annotations

from app.store_db import StoreError
from tests.app_support import FAST, FakeClient, send


def disk_full(*_args, **_kwargs):
    raise StoreError("Could not save your chat: the disk is full. Free some space, then try "
                     "again. Nothing saved before was lost.")


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
    assert window.banner.kind == "store" and "the disk is full" in window.banner.text.text()
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


def test_a_chat_that_cannot_be_deleted_says_so_and_stays(qtbot, make_window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    chat = window.store.create_conversation("Keep")
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(window.store, "delete_conversation", disk_full)
    window.actions.delete_chat(chat.id)
    assert window.banner.kind == "store" and "could not be deleted" in window.banner.text.text()
    assert window.store.has_conversation(chat.id)


def test_chat_instructions_that_cannot_be_saved_say_so(qtbot, make_window, monkeypatch):
    from app.settings_dialog import SettingsDialog

    window = make_window()
    send(qtbot, window, "hello")

    def accept(dialog):
        dialog.chat_prompt.setPlainText("Answer in French.")
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", accept)
    monkeypatch.setattr(window.store, "set_system_prompt", disk_full)
    window.actions.settings.trigger()
    assert window.banner.kind == "store" and "instructions could not be saved" in \
        window.banner.text.text()
    assert window.chat_model.row_at(0).kind != "system"  # not shown as if it were kept


def test_a_second_window_leaves_the_first_windows_answer_streaming(qtbot):
    """The first window's answer is still being written: the second must not mark it
    interrupted (it takes the instance lock before opening the chats)."""
    import subprocess

    from app.main_window import MainWindow
    from app.settings import Settings
    from app.store import Store
    from tests.test_store_crash import HOLD_LOCK, python

    with Store() as first:
        chat = first.create_conversation("Busy")
        answer = first.add_message(chat.id, "model", "Half of it", status="streaming")
    holder = python(HOLD_LOCK, stdin=subprocess.PIPE)  # the first window's process
    try:
        assert holder.stdout.readline().strip() == "True"
        window = MainWindow(client=FakeClient(), settings=Settings(first_run_done=True))
        qtbot.addWidget(window)
        assert window.store.get_message(answer.id).status == "streaming"
        assert "already open" in window.banner.text.text()
        window.close()
    finally:
        holder.communicate("")
