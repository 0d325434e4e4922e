"""The model list: the bundled model, Gemma 3 checkpoints found on disk, and "Open model…".

Each row says where the model is, its size, whether it sees pictures, the memory it needs on
the chosen device and the longest context that fits there.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.attachments import human_size

COLUMNS = ("Model", "Where", "Size", "Pictures", "Memory needed", "Longest context")


class ModelPanel(QDialog):
    model_chosen = Signal(str, str)  # source ("" = bundled), mmproj ("" = none)
    folder_added = Signal(str)
    server_chosen = Signal(str, str, str, int)  # address, model, API key ("": none), context

    def __init__(self, client, settings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setAccessibleName("Models")
        self.resize(860, 460)
        self.client, self.settings = client, settings
        self.rows: list[dict] = []
        box = QVBoxLayout(self)
        box.setContentsMargins(16, 16, 16, 16)
        box.setSpacing(10)
        self.current = QLabel()
        self.current.setWordWrap(True)
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.current)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setAccessibleName("Models found on this computer")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemDoubleClicked.connect(lambda _item: self._use_selected())
        self.table.itemSelectionChanged.connect(self._selection_changed)
        box.addWidget(self.table, 1)
        self.status = QLabel("Looking for Gemma 3 models on this computer…")
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        box.addWidget(self.status)
        box.addLayout(self._buttons())
        client.models_found.connect(self.show_rows)
        client.loaded.connect(lambda _info: self.show_current())
        self.show_current()

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.open_button = QPushButton("Open model…")
        self.open_button.setToolTip("Load a Hugging Face model folder or a .gguf file (Ctrl+M)")
        self.open_button.setAccessibleName("Open model")
        menu = QMenu(self.open_button)
        menu.addAction("Hugging Face folder (config.json + .safetensors)…", self.open_folder)
        menu.addAction("GGUF file (.gguf, optional mmproj)…", self.open_gguf)
        self.open_button.setMenu(menu)
        self.add_button = QPushButton("Add folder to search…")
        self.add_button.setToolTip("Look for models in another folder as well")
        self.add_button.setAccessibleName("Add folder to search")
        self.add_button.clicked.connect(self.add_folder)
        self.rescan_button = QPushButton("Search again")
        self.rescan_button.setToolTip("Look for models again")
        self.rescan_button.setAccessibleName("Search again")
        self.rescan_button.clicked.connect(self.rescan)
        self.server_button = QPushButton("Server…")
        self.server_button.setToolTip("Use a Gemma 3 on a vLLM, llama.cpp or Ollama server")
        self.server_button.setAccessibleName("Server")
        self.server_button.clicked.connect(self.choose_server)
        self.use_button = QPushButton("Use this model")
        self.use_button.setObjectName("Primary")
        self.use_button.setToolTip("Load the selected model (the current one is unloaded)")
        self.use_button.setAccessibleName("Use this model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use_selected)
        close = QPushButton("Close")
        close.setToolTip("Close the model list")
        close.setAccessibleName("Close")
        close.clicked.connect(self.close)
        buttons = (self.open_button, self.add_button, self.rescan_button, self.server_button)
        for button in (*buttons, close):
            button.setAutoDefault(False)  # Enter means "use this model", nothing else
        for button in buttons:
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.use_button)
        row.addWidget(close)
        return row

    def rescan(self) -> None:
        self.status.setText("Looking for Gemma 3 models on this computer…")
        self.client.discover(self.settings.model_folders, self.settings.device)

    def show_current(self) -> None:
        info = self.client.info
        if info is None:
            self.current.setText("<b>No model is loaded yet.</b>")
            return
        if info.get("server"):
            self.current.setText(f"<b>In use:</b> {info['name']} (server at {info['server']}) · "
                                 f"context {info['context_length']:,} tokens")
            return
        sees = "sees pictures" if info["sees_images"] else "text only (cannot see pictures)"
        kind = " · small <i>base</i> model" if info.get("base_model") else ""
        self.current.setText(f"<b>In use:</b> {info['name']} · {sees} · context "
                             f"{info['context_length']:,} tokens{kind}")

    def show_rows(self, rows: list[dict]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            fits = row["max_context"]
            cells = (row["name"], row["origin"], human_size(row["size"]),
                     "Yes" if row["sees_images"] else "No",
                     f"{human_size(row['memory'])} ({row['device'].upper()}, "
                     f"{row['memory_context'] // 1024}K context)",
                     f"{fits:,} tokens" if fits else "does not fit")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(self._tooltip(row))
                self.table.setItem(r, c, item)
        found = len(rows) - 1
        self.status.setText(f"Found {found} Gemma 3 model{'s' if found != 1 else ''} on this "
                            "computer (Hugging Face cache, LM Studio, Ollama and your folders)."
                            if found else "No other Gemma 3 models were found. Use “Open "
                            "model…” to load one, or download an instruction-tuned Gemma 3 "
                            "(for example gemma-3-4b-it) from Hugging Face or LM Studio.")

    def _tooltip(self, row: dict) -> str:
        lines = [row["name"], row["path"] or "bundled with Gemma Desk"]
        if row["mmproj"]:
            lines.append(f"vision projector: {row['mmproj']}")
        if row["description"]:
            lines.append(row["description"])
        lines.append(f"{row['params'] / 1e9:.2f} billion parameters; the model allows up to "
                     f"{row['model_max_context']:,} tokens of context")
        return "\n".join(lines)

    def _selection_changed(self) -> None:
        self.use_button.setEnabled(bool(self.table.selectedItems()))

    def _use_selected(self) -> None:
        rows = {item.row() for item in self.table.selectedItems()}
        if rows:
            row = self.rows[rows.pop()]
            self.model_chosen.emit(row["path"], row["mmproj"])
            self.close()

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if folder:
            self.model_chosen.emit(folder, "")
            self.close()

    def open_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", "",
                                              "GGUF models (*.gguf)")
        if not path:
            return
        mmproj = self._ask_mmproj(Path(path))
        self.model_chosen.emit(path, mmproj)
        self.close()

    def _ask_mmproj(self, model: Path) -> str:
        beside = [p for p in model.parent.glob("*.gguf") if "mmproj" in p.name.lower()]
        if beside:
            return str(beside[0])
        answer = QMessageBox.question(
            self, "Vision projector", "Does this model come with a vision projector file "
            "(mmproj-….gguf)? Choose it so that the model can see pictures.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return ""
        path, _ = QFileDialog.getOpenFileName(self, "Choose the vision projector",
                                              str(model.parent), "GGUF files (*.gguf)")
        return path

    def choose_server(self) -> None:
        from app.server_dialog import ServerDialog

        s = self.settings
        dialog = ServerDialog(s.server_url, s.server_model, s.server_context_length, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.server_chosen.emit(*dialog.values())
            self.close()

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder with models")
        if folder:
            self.folder_added.emit(folder)
            self.rescan()
