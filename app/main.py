"""Entry point of the desktop app: the window is on screen before any model loads."""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    from engine import __version__

    parser = argparse.ArgumentParser(prog="gemma-desk", description="Chat with Gemma 3 locally.")
    parser.add_argument("--version", action="version", version=f"gemma-desk {__version__}")
    parser.add_argument("files", nargs="*", help="files to attach to a new chat")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("Gemma Desk")
    window = MainWindow()
    window.show()
    for path in args.files:
        window.attach_file(path)
    return qt_app.exec()


if __name__ == "__main__":
    sys.exit(main())
