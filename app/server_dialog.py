"""The "Server…" form of the model list: where a Gemma 3 on an OpenAI-compatible server is.

The address, model name and context length go to the settings; the API key goes to the OS
keychain (or the user-only secrets file) through app.secrets, never to the settings.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
)

from app import secrets

MAX_CONTEXT = 1_048_576


class ServerDialog(QDialog):
    def __init__(self, url: str = "", model: str = "", context_length: int = 0,
                 parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Use a server")
        self.setAccessibleName("Use a server")
        box = QVBoxLayout(self)
        note = QLabel("Chats, pictures and documents are sent to this server once you choose "
                      "it. Works with vLLM, the llama.cpp server and Ollama.")
        note.setWordWrap(True)
        box.addWidget(note)
        form = QFormLayout()
        self.url = _field(url, "http://gpu-box:8000/v1", "Server address")
        self.model = _field(model, "gemma3:27b", "Model name")
        self.api_key = _field("", "only if the server asks for one", "API key")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.context = QSpinBox()
        self.context.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)  # as in Settings
        self.context.lineEdit().setTextMargins(4, 0, 4, 0)
        self.context.setRange(0, MAX_CONTEXT)
        self.context.setSingleStep(1024)
        self.context.setSpecialValueText("as the server reports")
        self.context.setValue(context_length)
        self.context.setAccessibleName("Context length")
        self.context.setToolTip("Used when the server does not report its context length")
        form.addRow("Address", self.url)
        form.addRow("Model", self.model)
        form.addRow("API key", self.api_key)
        form.addRow("Context length", self.context)
        box.addLayout(form)
        where = "the OS keychain" if secrets.storage() == "keychain" else \
            "a file only your user account can read"
        self.key_note = QLabel(f"A key is kept in {where}, never in the settings. Leave it "
                               "empty to keep the key already stored for this address.")
        self.key_note.setObjectName("Muted")
        self.key_note.setWordWrap(True)
        box.addWidget(self.key_note)
        self.problem = QLabel()
        self.problem.setObjectName("Muted")
        box.addWidget(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Use this server")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box.addWidget(buttons)

    def accept(self) -> None:
        if not self.url.text().strip():
            self.problem.setText("Enter the server's address.")
        elif not self.model.text().strip():
            self.problem.setText("Enter the name of the model the server serves.")
        else:
            super().accept()

    def values(self) -> tuple[str, str, str, int]:
        return (self.url.text().strip(), self.model.text().strip(), self.api_key.text(),
                self.context.value())


def _field(text: str, placeholder: str, name: str) -> QLineEdit:
    field = QLineEdit(text)
    field.setPlaceholderText(placeholder)
    field.setAccessibleName(name)
    return field
