"""API keys: the OS keychain when one answers, else a file only the user can read."""

from __future__ import annotations

import json
import stat
import sys

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked

from app import secrets

SERVER = "http://gpu-box:8000/v1"


class MemoryKeychain(KeyringBackend):
    """A keychain that keeps its entries in a dict; `locked` makes every call fail."""

    priority = 1

    def __init__(self, locked: bool = False):
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.locked = locked

    def _check(self):
        if self.locked:
            raise KeyringLocked("the keychain is locked")

    def get_password(self, service, username):
        self._check()
        return self.entries.get((service, username))

    def set_password(self, service, username, password):
        self._check()
        self.entries[(service, username)] = password

    def delete_password(self, service, username):
        self._check()
        self.entries.pop((service, username), None)


@pytest.fixture
def use_keychain():
    before = keyring.get_keyring()

    def install(backend):
        keyring.set_keyring(backend)
        return backend

    yield install
    keyring.set_keyring(before)


def file_keys() -> dict:
    return json.loads(secrets.secrets_path().read_text())["api_keys"]


def test_a_working_keychain_holds_the_key_and_no_file_is_written(use_keychain):
    keychain = use_keychain(MemoryKeychain())
    assert secrets.storage() == "keychain"
    assert secrets.save_api_key(SERVER + "/", "sk-123") == "keychain"
    assert keychain.entries == {("gemma-desk", SERVER): "sk-123"}
    assert secrets.load_api_key(SERVER) == "sk-123"
    assert not secrets.secrets_path().exists()
    secrets.delete_api_key(SERVER)
    assert secrets.load_api_key(SERVER) is None


def test_without_a_keychain_the_key_goes_to_a_file_only_the_user_can_read(use_keychain):
    use_keychain(fail.Keyring())
    assert secrets.storage() == "file"
    assert secrets.save_api_key(SERVER, "sk-abc") == "file"
    assert secrets.save_api_key("http://other:11434/v1", "sk-def") == "file"
    assert stat.S_IMODE(secrets.secrets_path().stat().st_mode) == 0o600
    assert secrets.load_api_key(SERVER) == "sk-abc"
    secrets.delete_api_key(SERVER)
    assert file_keys() == {"http://other:11434/v1": "sk-def"}
    assert secrets.load_api_key(SERVER) is None


def test_a_locked_keychain_falls_back_to_the_file(use_keychain):
    use_keychain(MemoryKeychain(locked=True))
    assert secrets.save_api_key(SERVER, "sk-locked") == "file"
    assert secrets.load_api_key(SERVER) == "sk-locked"


def test_moving_to_a_keychain_removes_the_plaintext_copy(use_keychain):
    use_keychain(fail.Keyring())
    secrets.save_api_key(SERVER, "sk-old")
    keychain = use_keychain(MemoryKeychain())
    assert secrets.save_api_key(SERVER, "sk-new") == "keychain"
    assert file_keys() == {}
    assert keychain.entries[("gemma-desk", SERVER)] == "sk-new"


def test_without_the_keyring_package_the_file_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring now fails
    assert secrets.save_api_key(SERVER, "sk-plain") == "file"
    assert secrets.load_api_key(SERVER) == "sk-plain"


def test_a_file_others_could_read_is_tightened_and_a_corrupt_one_is_replaced(use_keychain):
    use_keychain(fail.Keyring())
    path = secrets.secrets_path()
    path.write_text(json.dumps({"api_keys": {SERVER: "sk-x"}}))
    path.chmod(0o644)
    assert secrets.load_api_key(SERVER) == "sk-x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("{not json")
    assert secrets.load_api_key(SERVER) is None
    secrets.save_api_key(SERVER, "sk-y")
    assert file_keys() == {SERVER: "sk-y"}


def test_bad_input_is_refused_and_an_empty_key_deletes(use_keychain):
    use_keychain(fail.Keyring())
    with pytest.raises(ValueError, match="server address"):
        secrets.save_api_key("  ", "sk")
    secrets.save_api_key(SERVER, "sk-z")
    assert secrets.save_api_key(SERVER, "") == "nowhere"
    assert secrets.load_api_key(SERVER) is None
