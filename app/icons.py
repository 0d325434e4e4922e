"""Line icons drawn from small SVG paths, tinted with the current theme's colours."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from app import theme

# 24x24 stroke paths; each is drawn with round caps in the requested colour.
PATHS = {
    "attach": "M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.2-8.2a3.4 3.4 0 0 1 4.8 4.8L9.9 16.9"
              "a1.7 1.7 0 0 1-2.4-2.4l7.4-7.4",
    "send": "M12 19V5M5.5 11.5L12 5l6.5 6.5",
    "stop": "M7 7h10v10H7z",
    "copy": "M9 9h10v11H9zM6 15H5a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h9a1 1 0 0 1 1 1v1",
    "edit": "M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4",
    "regenerate": "M20 12a8 8 0 1 1-2.3-5.7M20 4v5h-5",
    "delete": "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
    "continue": "M6 5l7 7-7 7M13 5l7 7-7 7",
    "new": "M12 5v14M5 12h14",
    "settings": "M12 15.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zM19.4 15a1.7 1.7 0 0 0 .3 1.8"
                "l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21"
                "a2 2 0 1 1-4 0"
                "v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1"
                "a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1"
                " 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9"
                "a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3"
                "l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21"
                "a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z",
    "search": "M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM20 20l-4-4",
    "model": "M7 7h10v10H7zM10 3v4M14 3v4M10 17v4M14 17v4M3 10h4M3 14h4M17 10h4M17 14h4",
    "sidebar": "M4 5h16v14H4zM9 5v14",
    "close": "M6 6l12 12M18 6L6 18",
    "image": "M4 5h16v14H4zM4 16l5-5 4 4 2-2 5 5M15.5 9.5a1 1 0 1 0 0-.01",
    "file": "M14 3H6v18h12V7zM14 3v4h4M9 12h6M9 16h6",
    "folder": "M3 6h6l2 2h10v11H3z",
    "warning": "M12 4l9 16H3zM12 10v4M12 17v.01",
    "chevron": "M6 9l6 6 6-6",
    "export": "M12 4v11M7.5 8.5L12 4l4.5 4.5M5 15v5h14v-5",
}


def svg(name: str, color: str, width: float = 1.8) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
            f'stroke="{color}" stroke-width="{width}" stroke-linecap="round" '
            f'stroke-linejoin="round"><path d="{PATHS[name]}"/></svg>').encode()


@lru_cache(maxsize=256)
def pixmap(name: str, color: str, size: int = 18, ratio: float = 2.0) -> QPixmap:
    renderer = QSvgRenderer(QByteArray(svg(name, color)))
    image = QPixmap(int(size * ratio), int(size * ratio))
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size * ratio, size * ratio))
    painter.end()
    image.setDevicePixelRatio(ratio)
    return image


def icon(name: str, color: str | None = None, size: int = 18) -> QIcon:
    """An icon in `color` (the theme's text colour by default), muted when disabled."""
    colors = theme.current()
    result = QIcon()
    result.addPixmap(pixmap(name, color or colors.text, size), QIcon.Mode.Normal)
    result.addPixmap(pixmap(name, colors.muted, size), QIcon.Mode.Disabled)
    return result
