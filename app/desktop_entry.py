"""The app's place on the desktop: its icons, and the Linux application-menu entry.

`install()` writes a freedesktop .desktop file into $XDG_DATA_HOME/applications and the icon into
$XDG_DATA_HOME/icons/hicolor (both under ~/.local/share when XDG_DATA_HOME is unset), so that
after a plain `pip install` the app opens by double-click; `uninstall()` removes exactly those
files. Qt-free, so it works from a terminal without a display.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

APP_ID = "gemma-desk"  # the .desktop file's name, the icon's theme name, the X11/Wayland class
DESKTOP_FILE = f"{APP_ID}.desktop"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 96, 128, 256, 512, 1024)
THEME_SIZES = (16, 22, 24, 32, 48, 64, 96, 128, 256, 512)  # hicolor has no 1024 folder
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/tiff")
DOCUMENT_TYPES = (
    "text/plain", "text/markdown", "text/csv", "text/tab-separated-values", "text/html",
    "application/xhtml+xml", "application/json", "application/yaml", "application/x-yaml",
    "text/x-log", "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/x-python", "text/x-csrc", "text/x-c++src", "text/javascript", "text/x-java",
    "text/rust", "text/x-go", "application/x-shellscript", "text/x-sql", "application/xml",
    "application/toml",
)
# characters that the Desktop Entry spec says must be quoted inside an Exec argument
EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def resources_dir() -> Path:
    """resources/ as installed (package `app.resources`), or beside app/ in a source tree or a
    PyInstaller build (which ships it as `resources/` next to the `app` package)."""
    try:
        from importlib.resources import files

        return Path(str(files("app.resources")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "resources"


def icon_svg() -> Path:
    return resources_dir() / "icons" / f"{APP_ID}.svg"


def icon_png(size: int) -> Path:
    if size not in PNG_SIZES:
        raise ValueError(f"no {size}px icon; the sizes are {', '.join(map(str, PNG_SIZES))}")
    return resources_dir() / "icons" / f"{APP_ID}-{size}.png"


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share when it is unset or not absolute (as the spec says)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def find_launcher() -> list[str]:
    """The command that starts the installed app: the frozen executable itself, else the
    `gemma-desk` script that pip put beside this Python, else one on PATH."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    beside_python = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for candidate in (folder / APP_ID for folder in beside_python):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    on_path = shutil.which(APP_ID)
    if on_path:
        return [on_path]
    raise FileNotFoundError(
        f"No '{APP_ID}' launcher next to {sys.executable} or on PATH: install the app with "
        "`pip install .` (or the package) first, then run this again."
    )


def exec_line(command: list[str]) -> str:
    """The Exec value for `command` plus %F (the files to open), quoted as the spec requires."""
    return " ".join(_quote_exec_arg(arg) for arg in command) + " %F"


def _quote_exec_arg(arg: str) -> str:
    if arg and not (set(arg) & EXEC_RESERVED) and "%" not in arg:
        return arg
    inner = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg).replace("%", "%%")
    # a .desktop string value escapes backslashes once more
    return '"' + inner.replace("\\", "\\\\") + '"'


def render_desktop_file(command: list[str], icon: str = APP_ID) -> str:
    """The entry for `command`; `icon` is a theme name or, for a standalone build, a path."""
    template = (resources_dir() / DESKTOP_FILE).read_text(encoding="utf-8")
    mime_types = "".join(f"{kind};" for kind in IMAGE_TYPES + DOCUMENT_TYPES)
    fields = {"@EXEC@": exec_line(command), "@ICON@": icon, "@MIME_TYPES@": mime_types}
    for placeholder, value in fields.items():
        template = template.replace(placeholder, value)
    return template


def installed_paths(base: Path | None = None) -> list[Path]:
    """Every file `install()` writes, so that `uninstall()` removes those and nothing else."""
    base = base or data_home()
    hicolor = base / "icons" / "hicolor"
    icons = [hicolor / f"{n}x{n}" / "apps" / f"{APP_ID}.png" for n in THEME_SIZES]
    return [base / "applications" / DESKTOP_FILE, hicolor / "scalable" / "apps" / f"{APP_ID}.svg",
            *icons]


def install(base: Path | None = None, command: list[str] | None = None) -> list[Path]:
    base = base or data_home()
    desktop_file, svg, *pngs = installed_paths(base)
    text = render_desktop_file(command or find_launcher())
    for target, source in [(svg, icon_svg()), *zip(pngs, map(icon_png, THEME_SIZES))]:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    desktop_file.parent.mkdir(parents=True, exist_ok=True)
    desktop_file.write_text(text, encoding="utf-8")
    _refresh_caches(base)
    return [desktop_file, svg, *pngs]


def uninstall(base: Path | None = None) -> list[Path]:
    base = base or data_home()
    removed = [path for path in installed_paths(base) if path.exists()]
    for path in removed:
        path.unlink()
    _refresh_caches(base)
    return removed


def _refresh_caches(base: Path) -> None:
    # menus pick up a changed icon folder by its time stamp, and "open with" by the MIME cache
    hicolor = base / "icons" / "hicolor"
    if hicolor.is_dir():
        os.utime(hicolor)
    tool = shutil.which("update-desktop-database")
    if tool and (base / "applications").is_dir():
        subprocess.run([tool, "-q", str(base / "applications")], check=False)


def main(action: str) -> int:
    """`gemma-desk --install-desktop-entry` / `--uninstall-desktop-entry`."""
    if sys.platform in ("win32", "darwin"):
        print("gemma-desk: desktop entries are for Linux and other freedesktop systems; on "
              "Windows and macOS, build the app with packaging/build.py (see the README's "
              "'Install as an app')", file=sys.stderr)
        return 1
    try:
        paths = install() if action == "install" else uninstall()
    except OSError as exc:
        print(f"gemma-desk: {exc}", file=sys.stderr)
        return 1
    verb = "Installed" if action == "install" else "Removed"
    if not paths:
        print("gemma-desk: no desktop entry was installed; nothing to remove")
    for path in paths:
        print(f"{verb} {path}")
    return 0
