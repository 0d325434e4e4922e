"""Attachment files kept by content (sha256), and the one-instance lock.

Attachments live under data_dir()/attachments/<first two hex digits>/<sha256>: the same picture
dropped into ten chats is stored once, and the database only holds its hash, never its bytes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from pathlib import Path
from typing import BinaryIO

from app.paths import data_dir
from app.store_db import StoreError, failure

_CHUNK = 1 << 20


class AttachmentFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def add(self, source: Path | bytes, name: str) -> tuple[str, int, Path]:
        """Copy a file (or bytes) in; returns (sha256, size, stored path). A StoreError names the
        file and says whether it could not be read or not be written."""
        try:
            return self._copy(source)
        except OSError as exc:
            if isinstance(source, Path) and exc.filename is not None and \
                    Path(exc.filename) == source:
                reason = "it is no longer there" if isinstance(exc, FileNotFoundError) else \
                    f"it cannot be read ({exc.strerror or exc})"
                raise StoreError(f"{name} could not be attached: {reason} ({source}).") from exc
            raise failure(exc, f"copy {name} into the data folder", self.root) from exc

    def _copy(self, source: Path | bytes) -> tuple[str, int, Path]:
        # written to a temporary name and renamed, so a crash never leaves a half file under a
        # valid hash
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f"incoming-{uuid.uuid4().hex}"
        try:
            with open(temp, "wb") as out:
                if isinstance(source, (bytes, bytearray, memoryview)):
                    sha, size = _write(out, [bytes(source)])
                else:
                    with open(source, "rb") as f:
                        sha, size = _write(out, iter(lambda: f.read(_CHUNK), b""))
                out.flush()
                os.fsync(out.fileno())
            target = self.path_for(sha)
            if target.exists():
                temp.unlink()
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return sha, size, target

    def remove(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def remove_leftovers(self) -> None:
        """Half-copied files of a process killed while attaching: only the one app using these
        chats may do this, as another could be copying now."""
        for temp in self.root.glob("incoming-*"):
            temp.unlink(missing_ok=True)


def _write(out: BinaryIO, chunks) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    return digest.hexdigest(), size


class InstanceLock:
    """An OS file lock: held while the process lives, released by the OS even after a crash,
    so there are no stale locks to clean up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        """True if this process now holds the lock (or already did); False if another holds it."""
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            _lock(handle)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # for people wondering who holds it
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            _unlock(self._file)
            self._file.close()
            self._file = None


if sys.platform == "win32":
    import msvcrt

    def _lock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_instance_lock: InstanceLock | None = None


def acquire_instance_lock() -> bool:
    """Claim data_dir() for this process. False means another Gemma Desk is running on the same
    chats: the app should say so and bring that window forward instead of opening a second."""
    global _instance_lock
    path = data_dir() / "instance.lock"
    if _instance_lock is None or _instance_lock.path != path:
        release_instance_lock()
        _instance_lock = InstanceLock(path)
    return _instance_lock.acquire()


def release_instance_lock() -> None:
    if _instance_lock is not None:
        _instance_lock.release()
