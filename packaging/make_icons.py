"""Render the app icon from resources/icons/gemma-desk.svg into every size the platforms use.

Run after editing the SVG: `python packaging/make_icons.py`. It writes gemma-desk-<N>.png for
each size, gemma-desk.ico (Windows) and gemma-desk.icns (macOS) beside the SVG; all are committed,
so neither installing nor packaging needs Qt's SVG renderer to produce them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SVG = ICONS / "gemma-desk.svg"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 96, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico frame can hold


def render_png(renderer, size: int, target: Path) -> None:
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QImage, QPainter

    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    if not image.save(str(target)):
        raise OSError(f"could not write {target}")


def render_all() -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (keeps Qt up)
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise ValueError(f"{SVG} is not an SVG that Qt can draw")
    written = []
    for size in PNG_SIZES:
        render_png(renderer, size, ICONS / f"gemma-desk-{size}.png")
        written.append(ICONS / f"gemma-desk-{size}.png")
    return written


def pack_platform_icons() -> list[Path]:
    from PIL import Image

    frames = {size: Image.open(ICONS / f"gemma-desk-{size}.png").convert("RGBA")
              for size in PNG_SIZES}
    ico, icns = ICONS / "gemma-desk.ico", ICONS / "gemma-desk.icns"
    # the exact renders go in, so small sizes stay crisp instead of being downscaled by Pillow
    frames[256].save(ico, sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[frames[s] for s in ICO_SIZES if s != 256])
    frames[1024].save(icns, append_images=[frames[s] for s in (32, 64, 128, 256, 512)])
    return [ico, icns]


def main() -> int:
    for path in render_all() + pack_platform_icons():
        print(f"wrote {path.relative_to(ICONS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
