"""Settings: model and device, answers (sampling), chat instructions, looks."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.settings import Settings

DEVICE_NAMES = {"auto": "Automatic (best available)", "cuda": "NVIDIA GPU (CUDA)",
                "mps": "Apple GPU (MPS)", "cpu": "CPU"}
THEME_NAMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, chat_prompt: str | None, max_context: int,
                 parent=None) -> None:
        """`chat_prompt` is the open chat's own instructions (None when no chat is open)."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.resize(560, 480)
        self.original = settings
        tabs = QTabWidget()
        tabs.addTab(self._model_tab(settings, max_context), "Model")
        tabs.addTab(self._answers_tab(settings), "Answers")
        tabs.addTab(self._chat_tab(settings, chat_prompt), "Instructions")
        tabs.addTab(self._looks_tab(settings), "Looks")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(tabs)
        box.addWidget(buttons)

    def _model_tab(self, s: Settings, max_context: int) -> QWidget:
        page, form = _form()
        self.device = _combo(DEVICE_NAMES, s.device, "Where the model runs")
        form.addRow("Device:", self.device)
        self.context = _spin(0, max(max_context, 131072), s.context_length, 1024,
                             "Context length in tokens; 0 picks the largest that fits in memory")
        self.context.setSpecialValueText("Largest that fits")
        form.addRow("Context length:", self.context)
        form.addRow(_note("A longer context holds longer chats and documents but needs more "
                          "memory. Changing the device reloads the model."))
        return page

    def _answers_tab(self, s: Settings) -> QWidget:
        page, form = _form()
        self.temperature = _double(0.0, 2.0, s.temperature, 0.05,
                                   "Randomness: 0 always picks the likeliest word")
        self.top_k = _spin(0, 1000, s.top_k, 1, "Choose among the k likeliest words (0: all)")
        self.top_p = _double(0.0, 1.0, s.top_p, 0.01,
                             "Choose among the likeliest words that add up to this probability")
        self.min_p = _double(0.0, 1.0, s.min_p, 0.01,
                             "Leave out words less likely than this share of the likeliest")
        self.max_tokens = _spin(1, 32768, s.max_answer_tokens, 64,
                                "The longest answer, in tokens")
        self.seed = _spin(-1, 2**31 - 1, s.seed, 1, "A fixed seed repeats answers; -1: random")
        self.seed.setSpecialValueText("Random")
        for label, widget in (("Temperature:", self.temperature), ("Top-k:", self.top_k),
                              ("Top-p:", self.top_p), ("Min-p:", self.min_p),
                              ("Longest answer:", self.max_tokens), ("Seed:", self.seed)):
            form.addRow(label, widget)
        form.addRow(_note("Gemma 3's recommended settings: temperature 1.0, top-k 64, "
                          "top-p 0.95."))
        return page

    def _chat_tab(self, s: Settings, chat_prompt: str | None) -> QWidget:
        page, form = _form()
        self.default_prompt = _text(s.system_prompt, "Instructions every new chat starts with")
        form.addRow("For new chats:", self.default_prompt)
        self.chat_prompt = _text(chat_prompt or "", "Instructions for the open chat only")
        self.chat_prompt.setEnabled(chat_prompt is not None)
        form.addRow("For this chat:", self.chat_prompt)
        self.pan_and_scan = QCheckBox("Pan and scan wide or tall pictures")
        self.pan_and_scan.setChecked(s.pan_and_scan)
        self.pan_and_scan.setToolTip("Also show the model up to four close-up crops of a "
                                     "non-square picture: sharper detail, more tokens")
        self.pan_and_scan.setAccessibleName("Pan and scan")
        form.addRow("Pictures:", self.pan_and_scan)
        return page

    def _looks_tab(self, s: Settings) -> QWidget:
        page, form = _form()
        self.theme = _combo(THEME_NAMES, s.theme, "Light, dark, or as the system is set")
        form.addRow("Theme:", self.theme)
        self.font_size = _spin(7, 24, s.font_size, 1, "Text size in points")
        form.addRow("Text size:", self.font_size)
        return page

    def result_settings(self) -> Settings:
        return replace(
            self.original, device=self.device.currentData(), context_length=self.context.value(),
            temperature=self.temperature.value(), top_k=self.top_k.value(),
            top_p=self.top_p.value(), min_p=self.min_p.value(),
            max_answer_tokens=self.max_tokens.value(), seed=self.seed.value(),
            system_prompt=self.default_prompt.toPlainText().strip(),
            pan_and_scan=self.pan_and_scan.isChecked(), theme=self.theme.currentData(),
            font_size=self.font_size.value()).validated()

    def result_chat_prompt(self) -> str:
        return self.chat_prompt.toPlainText().strip()


def _form() -> tuple[QWidget, QFormLayout]:
    page = QWidget()
    form = QFormLayout(page)
    form.setContentsMargins(14, 14, 14, 14)
    form.setVerticalSpacing(10)
    return page, form


def _combo(names: dict, current: str, tip: str) -> QComboBox:
    combo = QComboBox()
    for key, label in names.items():
        combo.addItem(label, key)
    combo.setCurrentIndex(max(0, list(names).index(current) if current in names else 0))
    combo.setToolTip(tip)
    combo.setAccessibleName(tip)
    return combo


def _spin(low: int, high: int, value: int, step: int, tip: str) -> QSpinBox:
    return _number_box(QSpinBox(), low, high, value, step, tip)


def _double(low: float, high: float, value: float, step: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(2)
    return _number_box(spin, low, high, value, step, tip)


def _number_box(spin, low, high, value, step, tip: str):
    spin.setButtonSymbols(spin.ButtonSymbols.NoButtons)  # typed, or arrow keys and wheel
    spin.lineEdit().setTextMargins(4, 0, 4, 0)  # style sheets give a spin box's text no padding
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    spin.setAccessibleName(tip)
    return spin


def _text(value: str, tip: str) -> QPlainTextEdit:
    edit = QPlainTextEdit(value)
    edit.setToolTip(tip)
    edit.setAccessibleName(tip)
    edit.setPlaceholderText("None")
    edit.setMaximumHeight(110)
    return edit


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("Muted")
    label.setWordWrap(True)
    return label

