"""Build Gemma Desk as a double-click app for this platform: `python packaging/build.py`.

Needs PyInstaller (`pip install ".[package]"`). Produces, under dist/:
    Linux    gemma-desk/ with the gemma-desk program, gemma-desk.desktop and gemma-desk.png
    Windows  gemma-desk/gemma-desk.exe (no console window)
    macOS    Gemma Desk.app
Check a build with `dist/gemma-desk/gemma-desk --self-test`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "gemma-desk.spec"
APP_FOLDER = "gemma-desk"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work folder (kept between builds to save time)")
    parser.add_argument("--clean", action="store_true", help="empty the work folder first")
    return parser.parse_args(argv)


def run_pyinstaller(dist: Path, work: Path, clean: bool) -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise SystemExit("PyInstaller is not installed: pip install \".[package]\"") from None
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    if clean:
        command.insert(3, "--clean")
    subprocess.run(command, cwd=ROOT, check=True)


def finish_linux_folder(folder: Path) -> list[Path]:
    """A .desktop file and icon beside the program, so the folder works from a file manager;
    `./gemma-desk --install-desktop-entry` puts it in the application menu."""
    sys.path.insert(0, str(ROOT))
    from app.desktop_entry import DESKTOP_FILE, icon_png, render_desktop_file

    icon = folder / "gemma-desk.png"
    shutil.copyfile(icon_png(256), icon)
    entry = folder / DESKTOP_FILE
    entry.write_text(render_desktop_file([str(folder / "gemma-desk")], icon=str(icon)),
                     encoding="utf-8")
    entry.chmod(0o755)  # file managers ask before running a .desktop file that is not executable
    return [entry, icon]


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    run_pyinstaller(args.dist.resolve(), args.work.resolve(), args.clean)
    folder = args.dist.resolve() / APP_FOLDER
    if sys.platform.startswith("linux"):
        finish_linux_folder(folder)
    built = args.dist.resolve() / "Gemma Desk.app" if sys.platform == "darwin" else folder
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    print(f"Built {built} in {minutes:.0f} min {seconds:.0f} s, "
          f"{folder_size(built) / 1e9:.2f} GB. Check it with: "
          f"{folder / 'gemma-desk'} --self-test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
