"""API keys of the servers the user configured, never stored beside the other settings.

A key goes to the OS keychain (macOS Keychain, Windows Credential Locker, the Secret Service on
Linux) through the `keyring` package when it is installed and a keychain answers; otherwise to
secrets.json in the settings folder, readable by the user alone (mode 600). Keys are filed under
the server's address as the settings hold it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from app.paths import config_dir

SERVICE = "gemma-desk"
FILE_NAME = "secrets.json"


def save_api_key(server: str, key: str) -> str:
    """Store `key` for `server`; returns where it went: "keychain" or "file"."""
    server = _name(server)
    if not key:
        delete_api_key(server)
        return "nowhere"
    if _keychain_call("set_password", SERVICE, server, key) is not _FAILED:
        _write_file_key(server, None)  # an older plaintext copy must not outlive the move
        return "keychain"
    _write_file_key(server, key)
    return "file"


def load_api_key(server: str) -> str | None:
    server = _name(server)
    found = _keychain_call("get_password", SERVICE, server)
    if isinstance(found, str) and found:
        return found
    return _read_file().get(server)


def delete_api_key(server: str) -> None:
    server = _name(server)
    _keychain_call("delete_password", SERVICE, server)
    _write_file_key(server, None)


def storage() -> str:
    """Where a new key would go ("keychain" or "file"), for the settings dialog to say."""
    return "keychain" if _keychain() is not None else "file"


def secrets_path() -> Path:
    return config_dir() / FILE_NAME


# -- the keychain -------------------------------------------------------------------------

_FAILED = object()


def _keychain():
    """The keyring module when a real keychain backs it, else None."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration: behave as if there were none
        return None
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    return keyring


def _keychain_call(name: str, *args):
    keyring = _keychain()
    if keyring is None:
        return _FAILED
    try:
        return getattr(keyring, name)(*args)
    except Exception:  # locked, no D-Bus, denied, no such entry: the file takes over
        return _FAILED


# -- the file -----------------------------------------------------------------------------


def _read_file() -> dict[str, str]:
    path = secrets_path()
    if not path.exists():
        return {}
    _owner_only(path)
    try:
        keys = json.loads(path.read_text(encoding="utf-8")).get("api_keys", {})
    except (ValueError, AttributeError):
        return {}  # unreadable keys are lost either way; the next save rewrites the file
    return {k: v for k, v in keys.items() if isinstance(v, str)} if isinstance(keys, dict) else {}


def _write_file_key(server: str, key: str | None) -> None:
    keys = _read_file()
    if key is None and server not in keys:
        return
    if key is None:
        del keys[server]
    else:
        keys[server] = key
    path = secrets_path()
    temporary = path.with_name(FILE_NAME + ".tmp")
    # Created with mode 600, so the key is never readable by others, not even for a moment.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"api_keys": keys}, out, indent=1)
    _owner_only(temporary)
    os.replace(temporary, path)


def _owner_only(path: Path) -> None:
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)


def _name(server: str) -> str:
    name = (server or "").strip().rstrip("/")
    if not name:
        raise ValueError("An API key needs the server address it belongs to")
    return name
