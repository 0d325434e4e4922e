"""Light and dark looks: one set of named colours, the Qt palette and style sheet built from it.

Painted parts of the app (the chat delegate, the context meter, icons) read `current()` so that
they follow a theme switch without their own colour tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class Colors:
    name: str
    window: str  # the chat background
    sidebar: str  # conversation list and panels
    surface: str  # cards: the composer, dialogs' groups
    raised: str  # buttons and chips on a surface
    border: str
    text: str
    muted: str  # secondary text: stats lines, hints
    accent: str
    accent_text: str  # text on the accent colour
    user_bubble: str
    code_bg: str
    code_border: str
    hover: str
    danger: str
    warning: str
    success: str
    meter_chat: str  # context meter: the conversation so far
    meter_files: str  # context meter: attachments
    meter_draft: str  # context meter: the message being written
    pygments: str  # pygments style for code blocks


LIGHT = Colors(
    name="light", window="#ffffff", sidebar="#f4f5f7", surface="#ffffff", raised="#eef0f3",
    border="#dfe2e7", text="#1d2026", muted="#6b7280", accent="#3d6cf0", accent_text="#ffffff",
    user_bubble="#eaf0ff", code_bg="#f6f8fa", code_border="#e3e6ea", hover="#eceff3",
    danger="#c62828", warning="#b26a00", success="#2e7d32", meter_chat="#3d6cf0",
    meter_files="#10a37f", meter_draft="#a78bfa", pygments="xcode",
)

DARK = Colors(
    name="dark", window="#1b1c1f", sidebar="#141517", surface="#25272b", raised="#2e3136",
    border="#363a40", text="#e6e8eb", muted="#9aa1ab", accent="#6d92ff", accent_text="#0d1117",
    user_bubble="#2a3350", code_bg="#111315", code_border="#2d3137", hover="#2a2d32",
    danger="#ff6b6b", warning="#f0b450", success="#5cc98a", meter_chat="#6d92ff",
    meter_files="#34d3a6", meter_draft="#b69cff", pygments="github-dark",
)

_current = LIGHT


def current() -> Colors:
    return _current


def resolve(choice: str) -> Colors:
    """"system" follows the desktop's colour scheme (light when it says nothing)."""
    if choice == "dark":
        return DARK
    if choice == "light":
        return LIGHT
    hints = QGuiApplication.styleHints()
    return DARK if hints.colorScheme() == Qt.ColorScheme.Dark else LIGHT


class ThemeNotifier(QObject):
    """Tells painted widgets that the colours changed."""

    changed = Signal()


notifier = ThemeNotifier()


def apply(app: QApplication, choice: str, font_size: int) -> Colors:
    global _current
    _current = resolve(choice)
    app.setStyle("Fusion")  # the same metrics everywhere; the style sheet does the rest
    app.setPalette(palette(_current))
    font = QFont(app.font())
    font.setPointSize(font_size)
    app.setFont(font)
    app.setStyleSheet(style_sheet(_current, font_size))
    notifier.changed.emit()
    return _current


def palette(c: Colors) -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.sidebar, QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.surface, QPalette.ColorRole.AlternateBase: c.sidebar,
        QPalette.ColorRole.Text: c.text, QPalette.ColorRole.Button: c.raised,
        QPalette.ColorRole.ButtonText: c.text, QPalette.ColorRole.Highlight: c.accent,
        QPalette.ColorRole.HighlightedText: c.accent_text,
        QPalette.ColorRole.ToolTipBase: c.surface,
        QPalette.ColorRole.ToolTipText: c.text, QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Link: c.accent, QPalette.ColorRole.Mid: c.border,
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c.muted))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c.muted))
    return p


def style_sheet(c: Colors, font_size: int) -> str:
    small = max(font_size - 1, 7)
    return f"""
QMainWindow, QDialog {{ background: {c.sidebar}; }}
QToolTip {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border};
           padding: 4px 6px; border-radius: 6px; }}
#ChatPane {{ background: {c.window}; }}
#Sidebar {{ background: {c.sidebar}; border-right: 1px solid {c.border}; }}
#Sidebar QListView {{ background: transparent; border: none; outline: none; }}
#Sidebar QListView::item {{ padding: 7px 10px; border-radius: 8px; margin: 1px 6px; }}
#Sidebar QListView::item:hover {{ background: {c.hover}; }}
#Sidebar QListView::item:selected {{ background: {c.raised}; color: {c.text}; }}
#TopBar {{ background: {c.window}; border-bottom: 1px solid {c.border}; }}
#ChatView {{ background: {c.window}; border: none; outline: none; }}
#Composer {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 14px; }}
#Composer[focused="true"] {{ border: 1px solid {c.accent}; }}
#ComposerInput {{ background: transparent; border: none; color: {c.text}; }}
#Chip {{ background: {c.raised}; border: 1px solid {c.border}; border-radius: 10px; }}
#Chip[problem="true"] {{ border: 1px solid {c.danger}; }}
#ChipName {{ color: {c.text}; }}
#ChipDetail {{ color: {c.muted}; font-size: {small}pt; }}
#Banner {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 10px; }}
#Banner[level="error"] {{ border: 1px solid {c.danger}; }}
#Banner[level="warning"] {{ border: 1px solid {c.warning}; }}
#BannerText {{ color: {c.text}; }}
#Muted {{ color: {c.muted}; }}
#DropZone {{ background: rgba(61, 108, 240, 0.10); border: 2px dashed {c.accent};
            border-radius: 18px; }}
#DropZoneText {{ color: {c.accent}; font-size: {font_size + 4}pt; font-weight: 600; }}
#MessageActions {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px; }}
QToolButton {{ background: transparent; border: none; border-radius: 7px; padding: 4px;
              color: {c.text}; }}
QToolButton:hover {{ background: {c.hover}; }}
QToolButton:pressed {{ background: {c.border}; }}
QToolButton:disabled {{ color: {c.muted}; }}
QToolButton#SendButton {{ background: {c.accent}; border-radius: 16px; }}
QToolButton#SendButton:disabled {{ background: {c.border}; }}
QToolButton#StopButton {{ background: {c.text}; border-radius: 16px; }}
QPushButton {{ background: {c.raised}; color: {c.text}; border: 1px solid {c.border};
              border-radius: 8px; padding: 5px 12px; }}
QPushButton:hover {{ background: {c.hover}; }}
QPushButton:default, QPushButton#Primary {{ background: {c.accent}; color: {c.accent_text};
                                           border: 1px solid {c.accent}; }}
QDialogButtonBox {{ dialogbuttonbox-buttons-have-icons: 0; }}  /* no stock tick and cross */
QPushButton#ModelButton {{ background: transparent; border: 1px solid transparent;
                          font-weight: 600; padding: 5px 10px; text-align: left; }}
QPushButton#ModelButton:hover {{ background: {c.hover}; border: 1px solid {c.border}; }}
QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {c.surface}; color: {c.text}; border: 1px solid {c.border}; border-radius: 7px;
    padding: 4px 6px; selection-background-color: {c.accent}; }}
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus,
QComboBox:focus {{ border: 1px solid {c.accent}; }}
/* The spin boxes have no buttons; unless their hidden buttons sit on the border box, Qt's
   style sheets squeeze the text field to one pixel and no value shows. */
QAbstractSpinBox::up-button, QAbstractSpinBox::down-button {{ subcontrol-origin: border;
    width: 0px; }}
#SearchField {{ border-radius: 9px; padding: 6px 8px; background: {c.surface}; }}
QProgressBar {{ background: {c.raised}; border: none; border-radius: 2px; max-height: 4px;
               color: transparent; }}
QProgressBar::chunk {{ background: {c.accent}; border-radius: 2px; }}
QStatusBar {{ background: {c.sidebar}; color: {c.muted}; border-top: 1px solid {c.border}; }}
QStatusBar QLabel {{ color: {c.muted}; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{ background: {c.border}; border-radius: 3px; min-height: 30px; }}
QScrollBar::handle:vertical:hover {{ background: {c.muted}; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; width: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QMenu {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border};
        border-radius: 8px; padding: 4px; }}
QMenu::item {{ padding: 5px 18px; border-radius: 5px; }}
QMenu::item:selected {{ background: {c.hover}; }}
QTabWidget::pane {{ border: 1px solid {c.border}; border-radius: 8px; top: -1px;
                   background: {c.surface}; }}
QTabBar::tab {{ padding: 7px 14px; color: {c.muted}; background: transparent; border: none;
               border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {c.text}; border-bottom: 2px solid {c.accent}; }}
QTabBar::tab:hover {{ color: {c.text}; }}
QTableView, QListView#ModelList {{ background: {c.surface}; border: 1px solid {c.border};
                                   border-radius: 8px; }}
QHeaderView::section {{ background: {c.sidebar}; color: {c.muted}; border: none;
                       padding: 4px 6px; }}
"""
