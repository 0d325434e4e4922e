"""The ground: version, info, the window opens offscreen, the embedded model is there."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "app.main", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("gemma-desk ")


def test_cli_info_reports_environment():
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "info"], capture_output=True, text=True, check=True
    )
    for field in ("Python", "torch", "devices", "default"):
        assert field in out.stdout
    assert "gemma-3-270m" in out.stdout


def test_engine_never_imports_qt():
    code = (
        "import sys, engine, engine.cli, engine.device, engine.loader\n"
        "print(any('PySide6' in m for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_model_assembles(real_gguf):
    assert real_gguf.stat().st_size > 200_000_000
    with open(real_gguf, "rb") as f:
        assert f.read(4) == b"GGUF"


@pytest.mark.usefixtures("qtbot")
def test_main_window_opens_offscreen(qtbot):
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.isVisible()
    assert window.windowTitle() == "Gemma Desk"
