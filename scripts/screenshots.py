"""Screenshots of the main window for the README: docs/screenshot-light.png and -dark.png.

Runs the real window (with the bundled model loaded by the real inference thread) under Xvfb,
in throwaway data and settings folders. The chat shown is sample content written by this script:
a question with a picture and an answer with a code block. Nothing in the user's folders is read
or changed.

    python scripts/screenshots.py            # starts Xvfb itself when there is no display
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 820)
QUESTION = "Here is our sales chart. Can you write Python that draws one like it?"
ANSWER = """The chart shows monthly sales rising from **January** to **June**, with a dip in \
April. This script draws the same chart with *matplotlib*:

```python
import matplotlib.pyplot as plt

months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
sales = [12, 15, 19, 14, 23, 27]  # thousands of units

plt.bar(months, sales, color="#5b8def")
plt.title("Monthly sales")
plt.ylabel("Units (thousands)")
plt.show()
```

Change `color` to match your slides, or use `plt.barh` for horizontal bars."""
OTHER_CHATS = ["Trip to Zermatt in March", "Summarise the Q3 report", "Regex for ISO dates",
               "Birthday dinner ideas"]


def main() -> int:
    xvfb = _ensure_display()
    scratch = Path(tempfile.mkdtemp(prefix="gemma-desk-shots-"))
    os.environ["GEMMA_DESK_DATA_DIR"] = str(scratch / "data")
    os.environ["GEMMA_DESK_CONFIG_DIR"] = str(scratch / "config")
    sys.path.insert(0, str(ROOT))
    try:
        return _shoot(scratch)
    finally:
        if xvfb is not None:
            xvfb.terminate()
        shutil.rmtree(scratch, ignore_errors=True)


def _ensure_display():
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("No display and no Xvfb: install it (apt-get install -y xvfb) or run with one.")
    display = ":97"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten",
                               "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return server


def _shoot(scratch: Path) -> int:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QFont, QFontDatabase
    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    if "Inter" in QFontDatabase.families():
        app.setFont(QFont("Inter"))
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.store import Store
    from app.worker import EngineClient

    client = EngineClient()
    loop = QEventLoop()
    client.loaded.connect(loop.quit)
    client.load_failed.connect(lambda message: (print(message), loop.quit()))
    client.load_model()
    loop.exec()
    picture = _chart(scratch / "sales-chart.png")
    notes = scratch / "meeting-notes.md"
    notes.write_text("# Sales review\n\n- Q2 up 18%\n- April dip: supplier delay\n" * 12)
    for theme in ("light", "dark"):
        store = Store(scratch / f"{theme}.sqlite3")
        _seed(store, picture)
        window = MainWindow(client=client, store=store,
                            settings=Settings(theme=theme, first_run_done=True))
        window.resize(*SIZE)
        window.show()
        window.chats.open(store.list_conversations()[0].id)
        window.composer.set_text("Now make the bars horizontal")
        window.composer.add_paths([str(notes)])
        _wait(app, lambda w=window: all(c.item.token_cost for c in w.composer.chips()))
        _wait(app, lambda: False, 0.6)  # layouts, thumbnails and the meter settle
        window.statusBar().clearMessage()  # "ready, loaded in N s" goes after a few seconds
        target = ROOT / "docs" / f"screenshot-{theme}.png"
        target.parent.mkdir(exist_ok=True)
        window.grab().save(str(target))
        print(f"wrote {target}")
        window.close()
        store.close()
    client.shutdown()
    QTimer.singleShot(0, app.quit)
    return 0


def _seed(store, picture: Path) -> None:
    for title in OTHER_CHATS:
        chat = store.create_conversation(title)
        store.add_message(chat.id, "user", title)
    chat = store.create_conversation()
    image = store.add_attachment_file(picture, picture.name, "image", token_cost=260)
    store.add_message(chat.id, "user", QUESTION, [image])
    store.add_message(chat.id, "model", ANSWER)


def _chart(path: Path) -> Path:
    """A small bar chart picture, drawn here so the screenshot needs no files."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QLinearGradient, QPainter

    image = QImage(720, 440, QImage.Format.Format_RGB32)
    image.fill(QColor("#fbfcfe"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont("Inter", 18)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#1d2026"))
    painter.drawText(40, 52, "Monthly sales")
    painter.setFont(QFont("Inter", 12))
    sales = [12, 15, 19, 14, 23, 27]
    for i, (month, value) in enumerate(zip(["Jan", "Feb", "Mar", "Apr", "May", "Jun"], sales)):
        bar = QRectF(60 + i * 105, 380 - value * 11, 70, value * 11)
        gradient = QLinearGradient(bar.topLeft(), bar.bottomLeft())
        gradient.setColorAt(0, QColor("#7aa2ff"))
        gradient.setColorAt(1, QColor("#3d6cf0"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 8, 8)
        painter.setPen(QColor("#6b7280"))
        painter.drawText(QRectF(bar.x(), 392, bar.width(), 24), Qt.AlignmentFlag.AlignCenter,
                         month)
    painter.end()
    image.save(str(path))
    return path


def _wait(app, done, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done():
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
