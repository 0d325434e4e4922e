"""Where Gemma Desk keeps the user's chats and settings.

`data_dir()` holds the chat database and attachment files; `config_dir()` holds settings. Both
follow the platform's conventions (platformdirs, app name "gemma-desk") unless the environment
variables GEMMA_DESK_DATA_DIR / GEMMA_DESK_CONFIG_DIR point elsewhere (tests and portable
installs use them). Each call creates the folder if it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "gemma-desk"


def data_dir() -> Path:
    """Folder for chats.sqlite3, attachments/ and backups/ (created on demand)."""
    override = os.environ.get("GEMMA_DESK_DATA_DIR")
    # appauthor=False: no doubled gemma-desk/gemma-desk folder on Windows
    return _ensure(override or platformdirs.user_data_dir(APP_NAME, False))


def config_dir() -> Path:
    """Folder for settings (created on demand)."""
    override = os.environ.get("GEMMA_DESK_CONFIG_DIR")
    return _ensure(override or platformdirs.user_config_dir(APP_NAME, False))


def _ensure(folder: str) -> Path:
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
