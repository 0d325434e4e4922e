"""Entry point of the desktop app: the window is on screen before any model loads."""

from __future__ import annotations

import argparse
import os
import sys

from PySide6.QtCore import QEvent, QObject


def parse_args(argv: list[str]) -> argparse.Namespace:
    from engine import __version__

    parser = argparse.ArgumentParser(prog="gemma-desk", description="Chat with Gemma 3 locally.")
    parser.add_argument("--version", action="version", version=f"gemma-desk {__version__}")
    actions = parser.add_mutually_exclusive_group()
    actions.add_argument("--install-desktop-entry", action="store_true",
                         help="add Gemma Desk to this user's application menu (Linux) and exit")
    actions.add_argument("--uninstall-desktop-entry", action="store_true",
                         help="remove what --install-desktop-entry added and exit")
    actions.add_argument("--self-test", action="store_true",
                         help="load the default model offscreen, answer one prompt, exit 0 if "
                              "that worked (checks an installed or packaged app)")
    parser.add_argument("files", nargs="*", help="files to attach to a new chat")
    args = parser.parse_args(argv)
    if args.files and not _opens_window(args):
        parser.error("files can only be given when opening the window")
    return args


def _opens_window(args: argparse.Namespace) -> bool:
    return not (args.install_desktop_entry or args.uninstall_desktop_entry or args.self_test)


class FileOpenForwarder(QObject):
    """Hands the files that the OS asks the running app to open (macOS "Open With", a file
    dropped on the Dock icon: a QFileOpenEvent) to the window, like files on the command line."""

    def __init__(self, window) -> None:
        super().__init__()
        self.window = window

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.FileOpen:
            path = event.file() or event.url().toLocalFile()
            if path:
                self.window.open_files([path])
                return True
        return super().eventFilter(watched, event)


def app_icon():
    """The window and taskbar icon, every rendered size, so no platform scales a blurry one."""
    from PySide6.QtGui import QIcon

    from app.desktop_entry import PNG_SIZES, icon_png

    icon = QIcon()
    for size in PNG_SIZES:
        icon.addFile(str(icon_png(size)))
    return icon


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        from app import desktop_entry

        return desktop_entry.main("install" if args.install_desktop_entry else "uninstall")
    if args.self_test:
        from app.self_test import run_self_test

        return run_self_test()
    return run_window(args.files)


def reporting_errors(window, previous):
    """An excepthook for errors no handler caught (Qt prints them and goes on): the window's
    banner says what happened, so nothing fails silently; the traceback still goes to stderr."""
    from PySide6.QtCore import QCoreApplication, QThread

    def hook(kind, error, trace) -> None:
        previous(kind, error, trace)
        if QThread.currentThread() is not QCoreApplication.instance().thread():
            return  # widgets belong to the GUI thread
        text = str(error) if isinstance(error, OSError) else (
            f"Something unexpected went wrong ({kind.__name__}: {error}). Gemma Desk goes on; "
            "if it happens again, please report it.")
        window.banner.show_message(text, "error", "unexpected")

    return hook


def run_window(files: list[str]) -> int:
    from PySide6.QtWidgets import QApplication

    from app.desktop_entry import APP_ID
    from app.main_window import MainWindow
    from app.store_db import StoreTooNewError

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("Gemma Desk")
    qt_app.setDesktopFileName(APP_ID)  # Wayland app id: ties the window to the menu entry
    qt_app.setWindowIcon(app_icon())
    try:
        window = MainWindow()
    except (OSError, StoreTooNewError) as exc:  # the chats cannot be opened: a full or
        # read-only disk (StoreError), or a database from a newer Gemma Desk
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, "Gemma Desk", f"Gemma Desk cannot start.\n\n{exc}")
        return 1
    previous_hook, sys.excepthook = sys.excepthook, reporting_errors(window, sys.excepthook)
    forwarder = FileOpenForwarder(window)
    qt_app.installEventFilter(forwarder)
    window.show()
    if files:
        window.open_files([os.path.abspath(path) for path in files])
    try:
        return qt_app.exec()
    finally:
        qt_app.removeEventFilter(forwarder)
        sys.excepthook = previous_hook


if __name__ == "__main__":
    sys.exit(main())
