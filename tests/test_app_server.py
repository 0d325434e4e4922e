"""The app with a Gemma 3 on a server: the real worker against a scripted loopback
OpenAI-compatible server (tests/fake_openai_server.py). No local model is loaded."""

from __future__ import annotations

import socket

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton

from app import secrets
from app import settings as settings_store
from app.main_window import MainWindow
from app.server_dialog import ServerDialog
from app.settings import Settings
from app.store import Store
from app.worker import EngineClient
from tests.fake_openai_server import FakeOpenAIServer, drop_after, endless, reply, stream

WAIT = 15_000
MODELS = reply({"object": "list", "data": [{"id": "gemma3", "max_model_len": 8192}]})


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        fake.script("/v1/models", MODELS)
        yield fake


@pytest.fixture
def client():
    engine_client = EngineClient()
    yield engine_client
    engine_client.shutdown()


@pytest.fixture
def make_window(qtbot, tmp_path, client):
    def make(url: str):
        chosen = Settings(theme="light", first_run_done=True, use_server=True, server_url=url,
                          server_model="gemma3")
        win = MainWindow(client=client, store=Store(tmp_path / "chats.sqlite3"),
                         settings=chosen)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(lambda: client.info is not None, timeout=WAIT)
        return win
    return make


def send(qtbot, window, text: str) -> None:
    window.composer.set_text(text)
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.chats.busy, timeout=WAIT)
    qtbot.waitUntil(lambda: not window.chats.busy, timeout=WAIT)


def last_answer(window):
    message = window.chat_model.messages[-1]
    assert message.role == "model"
    return message


def banner_buttons(window) -> list[str]:
    return [b.text() for b in window.banner.findChildren(QAbstractButton) if b.isVisible()]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_answer_streams_from_the_server_and_the_window_says_so(qtbot, make_window, server):
    server.script("/v1/chat/completions", stream(["Hello ", "from ", "the server."]))
    window = make_window(server.url)
    address = server.url.split("//")[1].split("/")[0]
    assert window.top_bar.model_button.text() == f"gemma3 on {address} (server)"
    assert window.server_note.isVisible() and server.url in window.server_note.text()
    assert window.client.info["context_length"] == 8192  # read from /v1/models

    send(qtbot, window, "Hi there")

    answer = last_answer(window)
    assert (answer.text, answer.status) == ("Hello from the server.", "complete")
    assert answer.stats["decode_tokens"] > 0 and answer.stats["usage_source"] == "tokenizer"
    assert answer.stats["server"] == server.url
    body = server.requests[-1]["json"]
    assert body["model"] == "gemma3" and body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "Hi there"}
    # the context meter counts with the Gemma tokenizer against the server's context
    qtbot.waitUntil(lambda: window.meter.usage.context_length == 8192
                    and window.meter.usage.history > 0, timeout=WAIT)


def test_a_server_dying_mid_answer_keeps_the_partial_answer_and_offers_retry(
        qtbot, make_window, server):
    server.script("/v1/chat/completions", drop_after(["Half an ", "answer"]),
                  stream(["A whole answer."]))
    window = make_window(server.url)

    send(qtbot, window, "Tell me something")

    answer = last_answer(window)
    assert (answer.text, answer.status) == ("Half an answer", "error")
    assert "lost in the middle of the answer" in answer.stats["error"]
    assert window.banner.isVisible() and "Retry" in banner_buttons(window)

    retry = [b for b in window.banner.findChildren(QAbstractButton) if b.text() == "Retry"]
    retry[0].click()
    qtbot.waitUntil(lambda: not window.chats.busy and last_answer(window).status == "complete",
                    timeout=WAIT)
    assert last_answer(window).text == "A whole answer."
    assert [m.role for m in window.chat_model.messages] == ["user", "model"]


def test_stop_ends_the_stream_and_keeps_what_was_written(qtbot, make_window, server):
    server.script("/v1/chat/completions", endless("la "))
    window = make_window(server.url)
    window.composer.set_text("Sing")
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "la" in last_answer(window).text, timeout=WAIT)

    window.chats.stop()

    qtbot.waitUntil(lambda: not window.chats.busy, timeout=WAIT)
    assert last_answer(window).status == "stopped" and last_answer(window).text.startswith("la")
    assert server.disconnected.wait(5)  # the server saw the app leave, so it stops generating


def test_a_refused_connection_is_explained_and_the_app_stays_usable(
        qtbot, make_window, server):
    server.script("/v1/chat/completions", stream(["Still here."]))
    window = make_window(server.url)
    shown = window.top_bar.model_button.text()

    window.use_server(closed_port_url(), "gemma3")  # switching to a server nobody runs
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT)
    assert "connection refused" in window.banner.text.text()
    assert window.top_bar.model_button.text() == shown  # the server in use is kept
    send(qtbot, window, "Are you there?")  # the server in use still answers
    assert last_answer(window).text == "Still here."

    window.use_server(server.url, "gemma3")
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=WAIT)
    assert window.settings.server_url == server.url


def test_a_server_gone_at_send_time_fails_the_answer_not_the_app(qtbot, make_window):
    with FakeOpenAIServer() as gone:
        gone.script("/v1/models", MODELS)
        window = make_window(gone.url)
    send(qtbot, window, "Hello?")
    answer = last_answer(window)
    assert answer.status == "error" and "connection refused" in answer.stats["error"]
    assert not window.chats.busy and window.composer.input.isEnabled()
    assert "Retry" in banner_buttons(window)


def test_server_settings_keep_the_key_out_of_the_settings_file(qtbot, make_window, server,
                                                               tmp_path):
    window = make_window(server.url)
    window.use_server(server.url, "gemma3", "sk-secret-123", 0)
    qtbot.waitUntil(lambda: len(server.requests) >= 2, timeout=WAIT)
    assert secrets.load_api_key(server.url) == "sk-secret-123"
    stored = (settings_store.config_dir() / "settings.ini").read_text()
    assert server.url in stored and "sk-secret-123" not in stored
    server.script("/v1/chat/completions", stream(["Keyed."]))
    qtbot.waitUntil(lambda: window.client.info is not None and not window.banner.isVisible(),
                    timeout=WAIT)
    send(qtbot, window, "With a key")
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-secret-123"


def test_server_dialog_asks_for_address_and_model(qtbot):
    dialog = ServerDialog("", "", 0)
    qtbot.addWidget(dialog)
    dialog.url.setText(" http://gpu-box:8000/v1 ")
    dialog.accept()
    assert dialog.result() != ServerDialog.DialogCode.Accepted
    assert "model" in dialog.problem.text()
    dialog.model.setText("gemma3:27b")
    dialog.api_key.setText("key")
    dialog.context.setValue(32768)
    dialog.accept()
    assert dialog.result() == ServerDialog.DialogCode.Accepted
    assert dialog.values() == ("http://gpu-box:8000/v1", "gemma3:27b", "key", 32768)
