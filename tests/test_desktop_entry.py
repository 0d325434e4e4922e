"""The Linux menu entry (install, validate, uninstall) and the icons every platform needs."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image, ImageChops, ImageStat

from app import desktop_entry
from app.desktop_entry import PNG_SIZES, THEME_SIZES


@pytest.fixture
def xdg_home(tmp_path, monkeypatch):
    home = tmp_path / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture
def launcher(tmp_path):
    """A stand-in for pip's `gemma-desk` script, in a folder whose name needs quoting."""
    folder = tmp_path / "My Apps"
    folder.mkdir()
    script = folder / "gemma-desk"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return script


def read_entry(path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_install_writes_a_valid_entry_and_icons_into_xdg_data_home(xdg_home, launcher):
    written = desktop_entry.install(command=[str(launcher)])
    entry_file = xdg_home / "applications" / "gemma-desk.desktop"
    assert written[0] == entry_file
    entry = read_entry(entry_file)
    assert entry["Exec"] == f'"{launcher}" %F'
    assert entry["Icon"] == "gemma-desk"
    assert entry["StartupWMClass"] == "gemma-desk"
    assert entry["Terminal"] == "false"
    assert entry["Categories"] == "Utility;"
    mime = set(entry["MimeType"].split(";"))
    assert {"image/png", "image/jpeg", "application/pdf", "text/plain", "text/markdown"} <= mime
    for size in THEME_SIZES:
        icon = xdg_home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "gemma-desk.png"
        assert Image.open(icon).size == (size, size)
    assert (xdg_home / "icons" / "hicolor" / "scalable" / "apps" / "gemma-desk.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry_file)],
                               capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_uninstall_removes_only_what_install_wrote(xdg_home, launcher):
    desktop_entry.install(command=[str(launcher)])
    other = xdg_home / "applications" / "someone-else.desktop"
    other.write_text("[Desktop Entry]\n")
    removed = desktop_entry.uninstall()
    assert len(removed) == 2 + len(THEME_SIZES)
    assert not any(path.exists() for path in removed)
    assert other.exists()
    assert desktop_entry.uninstall() == []


def test_relative_xdg_data_home_is_ignored_as_the_spec_says(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert desktop_entry.data_home() == tmp_path / ".local" / "share"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert desktop_entry.data_home() == tmp_path / ".local" / "share"


@pytest.mark.parametrize("command, expected", [
    (["/usr/bin/gemma-desk"], "/usr/bin/gemma-desk %F"),
    (["/opt/My Apps/gemma-desk"], '"/opt/My Apps/gemma-desk" %F'),
    (["/opt/a$b/gemma-desk"], '"/opt/a\\\\$b/gemma-desk" %F'),
    (["/opt/100%/gemma-desk"], '"/opt/100%%/gemma-desk" %F'),
])
def test_exec_arguments_are_quoted_as_the_desktop_entry_spec_requires(command, expected):
    assert desktop_entry.exec_line(command) == expected


def test_launcher_is_the_frozen_executable_in_a_packaged_build(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert desktop_entry.find_launcher() == [sys.executable]


def test_launcher_is_the_script_pip_installed_beside_python(launcher, monkeypatch):
    monkeypatch.setattr(desktop_entry.sysconfig, "get_path", lambda name: str(launcher.parent))
    assert desktop_entry.find_launcher() == [str(launcher)]


def test_no_launcher_anywhere_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(desktop_entry.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install"):
        desktop_entry.find_launcher()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert desktop_entry.main("install") == 1
    assert "No 'gemma-desk' launcher" in capsys.readouterr().err
    assert not (tmp_path / "share" / "applications").exists()


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_desktop_entry_is_refused_where_there_is_no_freedesktop_menu(platform, monkeypatch,
                                                                    tmp_path, capsys):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert desktop_entry.main("install") == 1
    assert "packaging/build.py" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_every_png_size_is_a_square_rgba_icon_with_a_transparent_margin():
    for size in PNG_SIZES:
        image = Image.open(desktop_entry.icon_png(size))
        assert image.format == "PNG" and image.size == (size, size)
        rgba = image.convert("RGBA")
        assert rgba.getpixel((0, 0))[3] == 0  # rounded corner
        assert rgba.getpixel((size // 2, size // 2))[3] == 255
    with pytest.raises(ValueError, match="no 20px icon"):
        desktop_entry.icon_png(20)


def test_windows_and_macos_icon_files_hold_their_sizes():
    icons = desktop_entry.resources_dir() / "icons"
    ico = Image.open(icons / "gemma-desk.ico")
    assert ico.format == "ICO"
    assert {(n, n) for n in (16, 24, 32, 48, 64, 128, 256)} <= ico.info["sizes"]
    icns = Image.open(icons / "gemma-desk.icns")
    assert icns.format == "ICNS" and icns.size == (1024, 1024)
    assert {(512, 512, 2), (256, 256, 1), (128, 128, 1), (16, 16, 2)} <= set(icns.info["sizes"])


def test_committed_pngs_are_renders_of_the_current_svg(tmp_path, qapp):
    """Editing the SVG without running packaging/make_icons.py fails here."""
    from PySide6.QtSvg import QSvgRenderer

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "packaging"))
    try:
        import make_icons
    finally:
        sys.path.pop(0)
    renderer = QSvgRenderer(str(desktop_entry.icon_svg()))
    assert renderer.isValid()
    fresh = tmp_path / "fresh.png"
    make_icons.render_png(renderer, 128, fresh)
    old, new = (Image.open(p).convert("RGBA") for p in (desktop_entry.icon_png(128), fresh))
    mean_difference_per_channel = ImageStat.Stat(ImageChops.difference(old, new)).mean
    assert max(mean_difference_per_channel) < 1.0
