"""The main window (grows with the app issue)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Gemma Desk")
        self.resize(1100, 760)
        self.setCentralWidget(QLabel("Gemma Desk"))
        self.pending_files: list[str] = []

    def attach_file(self, path: str) -> None:
        self.pending_files.append(path)
