"""gemma-desk's command line: --version, files to open, the OS "open with" event, the desktop
entry flags and the self-test (the real one, on the bundled model, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QFileOpenEvent

import app.main_window
from app import main as app_main
from engine import __version__

ROOT = Path(__file__).resolve().parent.parent


class FakeWindow:
    """Records what main() does with the window, in order."""

    def __init__(self) -> None:
        self.calls: list = []

    def show(self) -> None:
        self.calls.append("show")
        # main() returns once its event loop runs (pytest-qt runs pending events between a
        # test's setup and its body, so the timer cannot be started any earlier)
        QTimer.singleShot(0, QCoreApplication.quit)

    def open_files(self, paths: list[str]) -> None:
        self.calls.append(("open_files", list(paths)))


@pytest.fixture
def fake_window(monkeypatch, qapp):
    windows: list[FakeWindow] = []

    def make() -> FakeWindow:
        windows.append(FakeWindow())
        return windows[-1]

    monkeypatch.setattr(app.main_window, "MainWindow", make)
    return windows


def test_chats_that_cannot_be_opened_are_a_message_not_a_traceback(monkeypatch, qapp):
    from PySide6.QtWidgets import QMessageBox

    from app.store_db import StoreError

    def unopenable():
        raise StoreError("Gemma Desk could not open your chats: read-only")

    shown = []
    monkeypatch.setattr(app.main_window, "MainWindow", unopenable)
    monkeypatch.setattr(QMessageBox, "critical", lambda *args: shown.append(args[2]))
    assert app_main.main([]) == 1
    assert shown == ["Gemma Desk cannot start.\n\nGemma Desk could not open your chats: "
                     "read-only"]


def test_an_error_no_handler_caught_is_shown_in_the_banner(qapp, capsys):
    import threading

    class Banner:
        def __init__(self):
            self.shown = []

        def show_message(self, text, level, kind):
            self.shown.append((text, level, kind))

    class Window:
        banner = Banner()

    hook = app_main.reporting_errors(Window, sys.__excepthook__)
    for error in (OSError("Could not save your chat: the disk is full."), KeyError("row")):
        hook(type(error), error, None)
    worker = threading.Thread(target=hook, args=(ValueError, ValueError("x"), None))
    worker.start()
    worker.join()  # from another thread: printed only, widgets are the GUI thread's
    assert Window.banner.shown == [
        ("Could not save your chat: the disk is full.", "error", "unexpected"),
        ("Something unexpected went wrong (KeyError: 'row'). Gemma Desk goes on; if it happens "
         "again, please report it.", "error", "unexpected")]
    assert capsys.readouterr().err.count("Error") == 3  # every one still printed


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        app_main.parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gemma-desk {__version__}"


def test_files_on_the_command_line_reach_the_shown_window(fake_window, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert app_main.main(["notes.md", str(tmp_path / "photo one.png")]) == 0
    (window,) = fake_window
    assert window.calls == ["show", ("open_files", [str(tmp_path / "notes.md"),
                                                    str(tmp_path / "photo one.png")])]


def test_no_files_opens_nothing_and_the_window_gets_the_app_icon(fake_window, qapp):
    assert app_main.main([]) == 0
    assert fake_window[0].calls == ["show"]
    icon = qapp.windowIcon()
    assert {size.width() for size in icon.availableSizes()} >= {16, 32, 256, 1024}


def test_a_file_open_event_from_the_os_reaches_open_files(qapp, tmp_path):
    window = FakeWindow()
    forwarder = app_main.FileOpenForwarder(window)
    qapp.installEventFilter(forwarder)
    try:
        QCoreApplication.sendEvent(qapp, QFileOpenEvent(str(tmp_path / "report.pdf")))
    finally:
        qapp.removeEventFilter(forwarder)
    assert window.calls == [("open_files", [str(tmp_path / "report.pdf")])]


@pytest.mark.parametrize("argv", [
    ["--self-test", "a.txt"],
    ["--install-desktop-entry", "--uninstall-desktop-entry"],
    ["--self-test", "--install-desktop-entry"],
])
def test_flags_that_exit_refuse_files_and_each_other(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app_main.parse_args(argv)
    assert exit_info.value.code == 2
    assert "gemma-desk: error" in capsys.readouterr().err


def test_install_and_uninstall_flags(tmp_path, monkeypatch, capsys):
    launcher = tmp_path / "bin" / "gemma-desk"
    launcher.parent.mkdir()
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    entry = tmp_path / "share" / "applications" / "gemma-desk.desktop"
    assert app_main.main(["--install-desktop-entry"]) == 0
    assert f"Installed {entry}" in capsys.readouterr().out
    assert "Exec=" in entry.read_text()
    assert app_main.main(["--uninstall-desktop-entry"]) == 0
    assert f"Removed {entry}" in capsys.readouterr().out
    assert not entry.exists()


def test_self_test_answers_with_the_bundled_model(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test must choose offscreen by itself
    done = subprocess.run([sys.executable, "-m", "app.main", "--self-test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "self-test passed on Qt platform 'offscreen'" in done.stdout
    assert "gemma-3-270m-q4_k_m.gguf" in done.stdout
    assert "tokens/s" in done.stdout


def test_self_test_reports_a_model_that_cannot_load(tmp_path, monkeypatch, qapp, capsys):
    broken = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr("engine.default_model.ensure_default_model", lambda: broken)
    assert app_main.main(["--self-test"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gemma-desk self-test FAILED: The model could not be loaded")
    assert str(broken) in err
