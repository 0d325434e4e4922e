"""The window's parts against a scripted engine client (fast; the real model is in
test_app_window.py): rendering, long chats, composer, overflow choices, actions, search."""

from __future__ import annotations

import sys
import time

import pytest
from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit

from app.chat_model import PAGE, KindRole
from app.image_viewer import ImageViewer
from app.markdown_render import render_markdown
from app.settings import Settings
from app.theme import DARK, LIGHT
from tests.app_support import FAST, FakeClient, picture, send


def test_signal_delivery_keeps_reference_counts():
    """PySide6 6.12.0 dropped a reference to True on every emit (an abort after ~600)."""

    class Emitter(QObject):
        fired = Signal(int)

    emitter, seen = Emitter(), []
    emitter.fired.connect(seen.append)
    true, none = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(300):
        emitter.fired.emit(i)
    assert len(seen) == 300
    assert sys.getrefcount(True) >= true and sys.getrefcount(None) >= none  # 6.12: -300


def test_markdown_shows_html_as_text_and_colours_code():
    text = "<script>x</script> **bold**\n\n```python\ndef f():\n    return 1\n```\n\n![a](/etc/x)"
    rendered = render_markdown(text, LIGHT)
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "<strong>bold</strong>" in rendered.html
    assert rendered.code_blocks == ("def f():\n    return 1",)
    assert "copy-code:0" in rendered.html and "<img" not in rendered.html
    assert render_markdown("```python\nx = 1\n```", DARK).html != \
        render_markdown("```python\nx = 1\n```", LIGHT).html  # colours follow the theme


def test_a_thousand_messages_open_one_page_and_scroll_up_smoothly(qtbot, make_window):
    window = make_window()
    chat = window.store.create_conversation("Long chat")
    for i in range(1000):
        window.store.add_message(chat.id, ("user", "model")[i % 2],
                                 f"Message {i} with `code` and **bold** words " * 3)
    started = time.perf_counter()
    window.chats.open(chat.id)
    window.view.doItemsLayout()
    QGuiApplication.processEvents()
    print(f"\nopening 1000 messages took {(time.perf_counter() - started) * 1000:.0f} ms")
    assert window.chat_model.rowCount() == PAGE
    bar = window.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum() and bar.maximum() > 0, timeout=FAST)
    top_row = window.view.indexAt(QPoint(10, 40)).row()
    top_id = window.chat_model.row_at(top_row).message.id if top_row >= 0 else None
    bar.setValue(0)  # the user scrolls to the top: older messages come in above
    qtbot.waitUntil(lambda: window.chat_model.rowCount() == 2 * PAGE, timeout=FAST)
    qtbot.waitUntil(lambda: bar.value() > 0, timeout=FAST)
    assert window.chat_model.messages[window.chat_model.first_loaded].text.startswith(
        f"Message {1000 - 2 * PAGE} ")
    assert top_id is not None


def test_enter_sends_and_shift_enter_breaks_the_line(qtbot, make_window):
    window = make_window()
    QTest.keyClicks(window.composer.input, "line one")
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClicks(window.composer.input, "line two")
    assert window.composer.text() == "line one\nline two"
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    assert window.client.requests[-1]["turns"][-1]["text"] == "line one\nline two"
    assert [m.text for m in window.chat_model.messages] == ["line one\nline two",
                                                            "Hello **there**."]
    assert window.chat_model.messages[-1].stats["decode_tps"] == 40.0


def test_streaming_repaints_are_throttled(qtbot, make_window):
    window = make_window(FakeClient("word " * 150))
    repaints = []
    window.chat_model.dataChanged.connect(lambda *a: repaints.append(time.perf_counter()))
    tokens = []
    window.client.token.connect(lambda job, piece: tokens.append(time.perf_counter()))
    send(qtbot, window, "go")
    elapsed_ms = (tokens[-1] - tokens[0]) * 1000
    assert len(tokens) == 250
    assert len(repaints) <= elapsed_ms / 33 + 4 < len(tokens)


def test_chips_can_be_removed_and_broken_files_stop_the_send(qtbot, make_window, tmp_path):
    window = make_window()
    missing = str(tmp_path / "gone.pdf")
    window.composer.add_paths([picture(tmp_path / "a.png"), missing])
    chips = window.composer.chips()
    assert [c.item.name for c in chips] == ["a.png", "gone.pdf"]
    assert chips[1].property("problem") is True and "Cannot be used" in chips[1].detail_text()
    qtbot.waitUntil(lambda: chips[0].item.token_cost == 260, timeout=FAST)
    window.composer.set_text("look")
    window.composer.request_send()
    assert window.banner.isVisible() and "gone.pdf" in window.banner.text.text()
    assert window.composer.text() == "look" and not window.client.requests  # nothing lost
    chips[1].remove_button.click()
    assert [c.item.name for c in window.composer.chips()] == ["a.png"]
    window.composer.request_send()
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    sent = window.client.requests[-1]["turns"][-1]["attachments"]
    assert [a["name"] for a in sent] == ["a.png"]


def test_a_text_only_model_says_so_when_a_picture_is_attached(qtbot, make_window, tmp_path):
    client = FakeClient()
    client.info["sees_images"] = False
    client.measure = lambda key, path, kind, pan: client.measured.emit(
        key, {"token_cost": 260, "note": "this model cannot see pictures"})
    window = make_window(client)
    window.composer.add_paths([picture(tmp_path / "cat.png")])
    assert "cannot see pictures" in window.banner.text.text()
    window.composer.set_text("what is this?")
    window.composer.request_send()
    assert not client.requests and "Nothing was sent" in window.banner.text.text()


def test_overflow_offers_dropping_the_oldest_turns(qtbot, make_window):
    client = FakeClient(context_length=400)
    window = make_window(client, max_answer_tokens=50)
    chat = window.store.create_conversation("Full")
    for i in range(6):
        window.store.add_message(chat.id, ("user", "model")[i % 2], f"turn {i} " + "x" * 300)
    window.chats.open(chat.id)
    window.composer.set_text("one more question " * 4)
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    assert "too many" in window.meter.label.text()
    window.composer.request_send()
    assert window.banner.kind == "overflow" and "does not fit" in window.banner.text.text()
    assert not client.requests  # refused, not cut
    buttons = [b for b in window.banner.findChildren(QAbstractButton)
               if b.text() == "Drop the oldest turns"]
    buttons[0].click()
    qtbot.waitUntil(lambda: len(client.requests) == 1, timeout=FAST)
    kinds = [window.chat_model.index(r).data(KindRole) for r in range(
        window.chat_model.rowCount())]
    assert "dropped" in kinds
    sent = client.requests[0]["turns"]
    assert sent[0]["text"].startswith("turn 2") or sent[0]["text"].startswith("turn 4")
    assert sent[-1]["text"].startswith("one more question")


def test_an_overflow_found_by_the_worker_offers_the_same_choice(qtbot, make_window):
    client = FakeClient(context_length=4000)
    window = make_window(client, max_answer_tokens=50)
    chat = window.store.create_conversation("Exact count")
    for i in range(4):
        window.store.add_message(chat.id, ("user", "model")[i % 2], f"turn {i} " + "z" * 200)
    window.chats.open(chat.id)
    client.overflow_next = 30  # the meter thought it fits; the exact count says no
    send(qtbot, window, "last")
    assert window.banner.kind == "overflow" and "30 tokens more" in window.banner.text.text()
    assert window.chat_model.messages[-1].text == "last"  # kept, waiting for its answer
    drop = [b for b in window.banner.findChildren(QAbstractButton)
            if b.text() == "Drop the oldest turns"]
    drop[0].click()
    qtbot.waitUntil(lambda: len(client.requests) == 2 and not window.chats.busy, timeout=FAST)
    assert client.requests[1]["turns"][0]["text"].startswith("turn 2")
    assert window.chat_model.messages[-1].role == "model"


def test_editing_puts_the_draft_aside_and_brings_it_back(qtbot, make_window):
    window = make_window()
    send(qtbot, window, "original")
    window.composer.set_text("half-written thought")
    window.view.action_requested.emit("edit", window.chat_model.messages[0].id)
    assert window.composer.text() == "original" and window.banner.kind == "edit"
    window.actions.stop.trigger()  # Esc cancels the edit
    assert window.composer.text() == "half-written thought" and not window.banner.isVisible()
    window.view.action_requested.emit("edit", window.chat_model.messages[0].id)
    window.composer.set_text("changed")
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    assert [m.text for m in window.chat_model.messages][0] == "changed"
    assert window.composer.text() == "half-written thought"


def test_overflow_can_start_a_new_chat_carrying_a_summary(qtbot, make_window):
    client = FakeClient(context_length=400)
    window = make_window(client, max_answer_tokens=50)
    chat = window.store.create_conversation("Old topic")
    for i in range(4):
        window.store.add_message(chat.id, ("user", "model")[i % 2], "y" * 400)
    window.chats.open(chat.id)
    window.composer.set_text("next")
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    window.composer.request_send()
    window.context.new_chat_with_summary()
    qtbot.waitUntil(lambda: len(client.requests) == 1, timeout=FAST)
    new = window.chats.conversation
    assert new.id != chat.id and "They talked about tests." in new.system_prompt
    assert "Old topic" in new.system_prompt and len(client.summaries[0]["turns"]) == 4
    assert client.requests[0]["turns"] == [{"role": "user", "text": "next", "attachments": []}]
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    assert window.chat_model.row_at(0).kind == "system"  # the summary is shown in the chat


def test_a_document_longer_than_the_context_is_read_in_part_or_summarised(
        qtbot, make_window, tmp_path):
    client = FakeClient(context_length=2048)
    client.document_costs = {"big.txt": 5000}
    window = make_window(client, max_answer_tokens=256)
    big = tmp_path / "big.txt"
    big.write_text("line\n" * 400)
    window.composer.add_paths([str(big)])
    window.composer.set_text("What does it say?")
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    window.composer.request_send()
    labels = [b.text() for b in window.banner.findChildren(QAbstractButton)]
    assert "Summarise in sections" in labels and "Use the first part" in labels
    assert "big.txt alone takes 5,000 tokens" in window.banner.text.text()
    first = [b for b in window.banner.findChildren(QAbstractButton)
             if b.text() == "Use the first part"][0]
    first.click()
    qtbot.waitUntil(lambda: len(client.requests) == 1, timeout=FAST)  # Send was pressed
    sent = client.requests[0]["turns"][-1]["attachments"]
    assert [a["name"] for a in sent] == ["big.txt (lines 1-40 of 400).txt"]
    assert client.prepared[0][0] == "first_part" and 1000 < client.prepared[0][2] < 2048
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    window.composer.add_paths([str(big)])
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    window.context.documents.summarise(window.composer.items[0])
    qtbot.waitUntil(lambda: "section 2 of 4" in window.banner.text.text(), timeout=FAST)
    qtbot.waitUntil(lambda: [c.item.name for c in window.composer.chips()] == [
        "big.txt (summary of lines 1-400 of 400).md"], timeout=FAST)
    assert len(client.requests) == 1  # not sent by itself: Send was not pressed this time


def test_send_pressed_while_a_document_is_counted_waits_for_its_count(qtbot, make_window,
                                                                     tmp_path):
    client = FakeClient(context_length=2048)
    client.document_costs = {"big.txt": 5000}
    window = make_window(client, max_answer_tokens=256)
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("line\n" * 400)
    small.write_text("a few words\n")
    window.composer.add_paths([str(big)])
    window.composer.set_text("What does it say?")
    window.composer.request_send()  # at once: the chip is still counting
    assert client.requests == [] and "Counting the tokens of big.txt" in \
        window.banner.text.text()
    qtbot.waitUntil(lambda: "Summarise in sections" in [
        b.text() for b in window.banner.findChildren(QAbstractButton)], timeout=FAST)
    assert client.requests == []  # not sent to be refused: the choices are offered
    window.composer.remove(window.composer.items[0].key)
    window.composer.add_paths([str(small)])
    window.composer.request_send()
    qtbot.waitUntil(lambda: len(client.requests) == 1, timeout=FAST)  # it fits: sent by itself
    assert client.requests[0]["turns"][-1]["attachments"][0]["name"] == "small.txt"


def test_a_text_too_long_for_the_context_can_become_a_document(qtbot, make_window):
    client = FakeClient(context_length=2048)
    client.document_costs = {"Pasted text 1.txt": 3000}
    window = make_window(client, max_answer_tokens=256)
    pasted = "Row: alpha beta gamma\n" * 500  # 2,750 tokens at the fake's rate
    window.composer.set_text(pasted)
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    window.composer.request_send()
    assert "Even on its own it is too long" in window.banner.text.text()
    assert "raise the context length in Settings" in window.banner.text.text()  # up to 8,192
    move = [b for b in window.banner.findChildren(QAbstractButton)
            if b.text() == "Attach the text as a document"][0]
    move.click()
    assert window.composer.text() == "" and client.requests == []
    item = window.composer.items[0]
    assert item.name == "Pasted text 1.txt" and item.path.read_text(encoding="utf-8") == pasted
    qtbot.waitUntil(lambda: "Summarise in sections" in [
        b.text() for b in window.banner.findChildren(QAbstractButton)], timeout=FAST)
    assert "Pasted text 1.txt alone takes 3,000 tokens" in window.banner.text.text()


def test_a_message_too_long_for_the_longest_context_says_so(qtbot, make_window):
    client = FakeClient(context_length=2048)
    client.info["max_context"] = 2048
    window = make_window(client, max_answer_tokens=256)
    window.composer.set_text("word " * 3000)
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    window.composer.request_send()
    assert window.banner.text.text().endswith(
        "shorten it or remove an attachment (2,048 tokens is the longest context this model can "
        "have here).")


def test_summary_progress_updates_the_banner_under_a_stop_button_that_stays_put(
        qtbot, make_window, tmp_path):
    client = FakeClient(context_length=2048)
    client.document_costs = {"big.txt": 5000}
    window = make_window(client)
    big = tmp_path / "big.txt"
    big.write_text("line\n" * 400)
    window.composer.add_paths([str(big)])
    qtbot.waitUntil(lambda: window.meter.usage.overflow > 0, timeout=FAST)
    client.summarize_document = lambda path: 7  # progress comes from this test
    client.summarize = lambda request: 8
    window.context.documents.summarise(window.composer.items[0])

    def stop_buttons():
        return [b for b in window.banner.findChildren(QAbstractButton) if b.text() == "Stop"]

    stop = stop_buttons()[0]
    window.composer.set_text("What does it say?")  # a new count: still too long
    qtbot.waitUntil(lambda: window.meter.usage.draft > 0, timeout=FAST)
    assert window.banner.kind == "document"  # the progress is not replaced by the choice
    for fraction in (0.25, 0.5):
        client.task_progress.emit(7, fraction, "section 2 of 3 (lines 100-200)")
        assert f"section 2 of 3 (lines 100-200) ({int(fraction * 100)}%)" in \
            window.banner.text.text()
        assert stop_buttons() == [stop]  # not rebuilt: a click in progress is not lost
    stop.click()
    assert 7 in client._stopped
    window.context.new_chat_with_summary()
    client.task_progress.emit(8, 0.4, "reading the chat")
    client.task_progress.emit(7, 0.75, "combining summaries 1 of 1 (lines 1-400)")
    assert window.banner.text.text() == ("Summarising this chat for the new one: reading the "
                                         "chat (40%)…")


def test_an_interrupted_answer_continues_in_place(qtbot, make_window):
    window = make_window(FakeClient(" and the rest."))
    chat = window.store.create_conversation()
    window.store.add_message(chat.id, "user", "Tell me")
    cut = window.store.add_message(chat.id, "model", "The start", status="interrupted")
    window.chats.open(chat.id)
    bar = window.view.actions_bar
    # in sight with the mouse elsewhere, not only on hover
    qtbot.waitUntil(lambda: bar.isVisible() and bar.message_id == cut.id, timeout=FAST)
    assert bar.buttons["continue"].isVisible()
    bar.buttons["continue"].click()
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    request = window.client.requests[-1]
    assert request["continue_last"] and request["turns"][-1]["text"] == "The start"
    done = window.store.get_message(cut.id)
    assert done.text == "The start and the rest." and done.status == "complete"
    assert not bar.isVisible()  # a finished answer's bar shows on hover only


def test_stop_keeps_the_partial_answer(qtbot, make_window):
    window = make_window(FakeClient("x" * 3000))
    window.composer.set_text("go")
    window.composer.request_send()
    qtbot.waitUntil(lambda: len(window.chats.saver.text) > 30 if window.chats.saver else False,
                    timeout=FAST)
    window.composer.send_button.click()  # the send button is the stop button meanwhile
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=FAST)
    answer = window.store.get_conversation(window.conversation_id()).messages[-1]
    assert answer.status == "stopped" and 30 < len(answer.text) < 3000


def test_copy_message_and_code_block(qtbot, make_window):
    window = make_window(FakeClient("Try:\n\n```python\nprint('hi')\n```\n"))
    send(qtbot, window, "code please")
    answer = window.chat_model.messages[-1]
    window.view.action_requested.emit("copy", answer.id)
    assert QGuiApplication.clipboard().text() == answer.text
    index = window.chat_model.index(window.chat_model.rowCount() - 1)
    rect = window.view.visualRect(index)
    layout = window.view.delegate.layout_for(index)
    card, _ = layout.code_cards[0]
    doc_layout = layout.doc.documentLayout()
    copy_at = next(QPoint(x, int(card.top()) + 10) for x in range(int(card.right()), 0, -2)
                   if doc_layout.anchorAt(QPoint(x, int(card.top()) + 10).toPointF()))
    column_left = QPoint(window.view.delegate.left(), 0)
    click = rect.topLeft() + column_left + layout.text_rect.topLeft() + copy_at
    QTest.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=click)
    assert QGuiApplication.clipboard().text() == "print('hi')"


def test_message_text_can_be_selected(qtbot, make_window):
    from PySide6.QtWidgets import QTextBrowser

    window = make_window(FakeClient("Part of **this** answer"))
    send(qtbot, window, "hi")
    answer = window.chat_model.messages[-1]
    window.view.select_text(answer.id)
    editors = window.view.viewport().findChildren(QTextBrowser)
    assert len(editors) == 1 and editors[0].toPlainText() == "Part of this answer"
    assert window.view.is_selecting(answer.id) and editors[0].isReadOnly()


def test_clicking_a_thumbnail_opens_the_picture(qtbot, make_window, tmp_path):
    window = make_window()
    window.composer.add_paths([picture(tmp_path / "view.png", 640, 400)])
    send(qtbot, window, "see")
    index = window.chat_model.index(0)
    rect, _message, _i = window.view.delegate.layout_for(index).thumbs[0]
    column_left = QPoint(window.view.delegate.left(), 0)
    center = window.view.visualRect(index).topLeft() + column_left + rect.center()
    QTest.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=center)
    viewers = [w for w in window.findChildren(ImageViewer) if w.isVisible()]
    assert viewers and viewers[0].windowTitle() == "view.png"


def test_a_phone_photo_turned_by_exif_gets_an_upright_thumbnail(qapp, tmp_path):
    from PIL import Image

    from app.message_layout import thumb_size, thumbnail

    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown turned a quarter: a portrait photo
    Image.new("RGB", (400, 200), "#5b8def").save(path, exif=exif.tobytes())
    size = thumb_size(str(path))
    assert size.height() > size.width()
    pixmap = thumbnail(str(path), size.width(), size.height(), 1.0)
    assert (pixmap.width(), pixmap.height()) == (size.width(), size.height())


def test_search_finds_a_message_and_opens_its_chat(qtbot, make_window):
    window = make_window()
    chat = window.store.create_conversation("Trip")
    window.store.add_message(chat.id, "user", "Which train goes to Zermatt?")
    window.new_chat()
    window.actions.search.trigger()  # Ctrl+F
    assert window.sidebar.isVisible() and window.sidebar.search.selectedText() == ""
    QTest.keyClicks(window.sidebar.search, "zermat")
    qtbot.waitUntil(lambda: window.sidebar.results.count() == 1, timeout=FAST)
    window.sidebar.results.itemClicked.emit(window.sidebar.results.item(0))
    assert window.conversation_id() == chat.id
    assert window.chat_model.messages[0].text == "Which train goes to Zermatt?"


def test_settings_persist_and_damaged_values_fall_back(tmp_path):
    from app import settings as store

    store.save(Settings(temperature=0.3, theme="dark", model_folders=["/models"], seed=7))
    loaded = store.load()
    assert (loaded.temperature, loaded.theme, loaded.model_folders, loaded.seed) == \
        (0.3, "dark", ["/models"], 7)
    raw = store._store()
    raw.setValue("top_k", "many")
    raw.setValue("theme", "purple")
    raw.sync()
    loaded = store.load()
    assert loaded.top_k == 64 and loaded.theme == "system"


def test_every_control_has_a_name_and_a_tooltip(make_window):
    window = make_window()
    controls = [w for kind in (QAbstractButton, QLineEdit, QPlainTextEdit, QComboBox)
                for w in window.findChildren(kind) if w.isVisible()]
    assert len(controls) >= 6
    unnamed = [type(w).__name__ for w in controls if not w.accessibleName() or not w.toolTip()]
    assert not unnamed


def test_dark_theme_and_files_from_the_command_line(qtbot, make_window, tmp_path):
    window = make_window(theme="dark")
    assert QGuiApplication.palette().window().color().name() == DARK.sidebar
    window.open_files([picture(tmp_path / "cli.png")])
    assert window.conversation_id() is None
    assert [c.item.name for c in window.composer.chips()] == ["cli.png"]


def ink(button) -> set[str]:
    """The colours of the opaque pixels of a button's icon."""
    image = button.icon().pixmap(14, 14).toImage()
    pixels = (image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height()))
    return {p.name() for p in pixels if p.alpha() == 255}


def test_dismiss_icons_follow_a_change_of_theme(make_window, tmp_path):
    from PySide6.QtWidgets import QApplication

    from app import theme

    window = make_window(first_run_done=False)  # the welcome banner, in the light theme
    window.open_files([picture(tmp_path / "waiting.png")])
    buttons = [window.banner.close_button, window.composer.chips()[0].remove_button]
    assert [ink(b) for b in buttons] == [{LIGHT.text}] * 2
    theme.apply(QApplication.instance(), "dark", window.settings.font_size)
    assert [ink(b) for b in buttons] == [{DARK.text}] * 2  # the light ones were unseen on dark


def test_first_run_says_the_default_is_a_small_base_model(make_window):
    client = FakeClient()
    client.info.update(is_default=True, base_model=True, name="Gemma 3 270m on CPU, float32")
    window = make_window(client, first_run_done=False)
    assert window.banner.kind == "welcome"
    assert "base" in window.banner.text.text() and "model list" in window.banner.text.text()
    assert window.settings.first_run_done
    assert "base model" in window.top_bar.model_button.text()
    assert "base model" in window.view.empty_text
    window.on_loaded(dict(client.info, is_default=False, base_model=False, name="Gemma 3 4B"))
    assert window.banner.isHidden()  # its advice was taken: another model is in use


def test_try_again_asks_the_server_again(qtbot, make_window):
    client = FakeClient()
    window = make_window(client, use_server=True, server_url="http://gpu-box:8000/v1",
                         server_model="gemma-3-27b-it")
    window.load_model()
    client.info = None  # the worker let the model go; the server did not answer
    qtbot.waitUntil(lambda: window.banner.kind == "load", timeout=FAST)
    again = [b for b in window.banner.findChildren(QAbstractButton) if b.text() == "Try again"]
    again[0].click()
    assert client.loads[-1] == ("server", "http://gpu-box:8000/v1", "gemma-3-27b-it", 0)
    assert window.settings.use_server and not window.settings.model_source


def test_a_long_load_shows_its_progress_and_can_be_stopped(qtbot, make_window, monkeypatch):
    from app import load_progress

    monkeypatch.setattr(load_progress, "NOTE_AFTER_S", 0.0)
    client = FakeClient()
    window = make_window(client, model_source="/models/small-it")
    client.load_model = lambda *args: client.loads.append(args)  # the load never ends
    window.load_model("/models/huge-27b-it")
    client.loading.emit(0.4, "Loading model.layers.20.mlp.up_proj.weight")
    assert window.banner.kind == "loading"
    assert window.banner.text.text() == "Loading the model… 40%"
    stop = [b for b in window.banner.findChildren(QAbstractButton) if b.text() == "Stop"][0]
    client.loading.emit(0.5, "Loading model.layers.25.mlp.up_proj.weight")
    assert window.banner.text.text() == "Loading the model… 50%"
    stop.click()
    assert client.cancelled_loads == 1
    assert window.settings.model_source == "/models/small-it"  # the next start loads this
    assert window.banner.kind == "load" and "Loading stopped" in window.banner.text.text()
    client.unloaded.emit()  # the worker: the old model was already let go
    assert "no model" in window.top_bar.model_button.text().lower()


def test_model_list_shows_what_was_found_and_switches(qtbot, make_window):
    client = FakeClient()
    client.found_rows = [
        {"name": "Gemma 3 270M (bundled)", "path": "", "mmproj": "", "origin": "Bundled",
         "size": 253_000_000, "description": "small base model", "sees_images": False,
         "params": 268_000_000, "memory": 1_100_000_000, "memory_context": 4096,
         "max_context": 32768, "model_max_context": 32768, "device": "cpu"},
        {"name": "google/gemma-3-4b-it", "path": "/models/g4", "mmproj": "",
         "origin": "Hugging Face cache", "size": 8_600_000_000, "description": "",
         "sees_images": True, "params": 4_300_000_000, "memory": 9_000_000_000,
         "memory_context": 4096, "max_context": 0, "model_max_context": 131072,
         "device": "cpu"}]
    window = make_window(client)
    window.actions.models.trigger()  # Ctrl+M
    panel = window.actions._panel
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2, timeout=FAST)
    cells = [panel.table.item(1, c).text() for c in range(6)]
    assert cells[:2] == ["google/gemma-3-4b-it", "Hugging Face cache"]
    assert cells[3] == "Yes" and "8.0 GB" in cells[2] and cells[5] == "does not fit"
    assert "Found 1 Gemma 3 model" in panel.status.text()
    panel.table.selectRow(1)
    panel.use_button.click()
    assert client.loads[-1][0] == "/models/g4" and window.settings.model_source == "/models/g4"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_settings_dialog_shows_its_values(qtbot, scheme):
    from PySide6.QtWidgets import QAbstractSpinBox, QApplication

    from app import theme
    from app.settings_dialog import SettingsDialog

    defaults = Settings()
    theme.apply(QApplication.instance(), scheme, defaults.font_size)
    try:
        dialog = SettingsDialog(defaults, None, 32768)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        boxes = dialog.findChildren(QAbstractSpinBox)
        assert len(boxes) >= 6
        for box in boxes:  # each box's text field is as wide as most of the box
            assert box.lineEdit().width() > box.width() // 2, box.toolTip()
    finally:
        theme.apply(QApplication.instance(), defaults.theme, defaults.font_size)


def test_settings_dialog_changes_apply(qtbot, make_window, monkeypatch):
    from app.settings_dialog import SettingsDialog

    window = make_window()
    send(qtbot, window, "hello")

    def accept(dialog):
        dialog.temperature.setValue(0.2)
        dialog.context.setValue(4096)
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        dialog.chat_prompt.setPlainText("Answer in French.")
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", accept)
    window.actions.settings.trigger()  # Ctrl+,
    assert window.settings.temperature == 0.2 and window.client.contexts == [4096]
    assert QGuiApplication.palette().window().color().name() == DARK.sidebar
    chat = window.store.get_conversation(window.conversation_id())
    assert chat.system_prompt == "Answer in French."
    assert window.chat_model.row_at(0).kind == "system"
    from app import settings as stored

    assert stored.load().temperature == 0.2


def test_closing_mid_answer_keeps_it_as_stopped(qtbot, make_window):
    window = make_window(FakeClient("y" * 3000))
    window.composer.set_text("go")
    window.composer.request_send()
    qtbot.waitUntil(lambda: len(window.chats.saver.text) > 10 if window.chats.saver else False,
                    timeout=FAST)
    chat_id = window.conversation_id()
    window.close()
    answer = window.store.get_conversation(chat_id).messages[-1]
    assert answer.status == "stopped" and answer.text.startswith("yyyyyyyyyy")


def test_chats_can_be_renamed_pinned_exported_and_deleted(qtbot, make_window, monkeypatch,
                                                         tmp_path):
    from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

    window = make_window()
    send(qtbot, window, "first chat")
    first = window.conversation_id()
    window.new_chat()
    send(qtbot, window, "second chat")
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Renamed", True))
    window.sidebar.rename(first, "first chat")
    assert window.store.get_conversation(first).title == "Renamed"
    window.sidebar._pin(first, True)
    assert window.sidebar.chats.conversation_at(0).id == first
    target = tmp_path / "out.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(target), "Web page (*.html)"))
    window.actions.export_chat(first)
    assert "first chat" in target.read_text()
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.actions.delete_chat(window.conversation_id())
    assert window.conversation_id() is None and not window.chat_model.messages
    assert [c.id for c in window.store.list_conversations()] == [first]


def test_what_was_being_written_survives_closing_the_app(qtbot, make_window, tmp_path):
    from app import settings as stored

    window = make_window()
    window.composer.set_text("an unfinished thought")
    window.composer.add_paths([picture(tmp_path / "draft.png")])
    window.close()
    again = make_window(**{k: v for k, v in vars(stored.load()).items()
                           if k in ("draft_text", "draft_files")})
    assert again.composer.text() == "an unfinished thought"
    assert [c.item.name for c in again.composer.chips()] == ["draft.png"]
