"""The chat database file: opening it safely, its schema versions, backups, corrupt files.

The schema is a list of steps; PRAGMA user_version counts the steps applied. A new database and
an upgraded one run the very same steps, so the upgrade path is exercised every time a new
database is made. Before upgrading a database that already holds chats, a copy is written to
backups/ beside it with SQLite's online backup API.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Each step is one transaction. Never edit a released step; append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # v1: chats, messages, attachments
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '')""",
        # seq is an INTEGER PRIMARY KEY so that VACUUM keeps it (the search index points to it)
        """CREATE TABLE messages (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete',
            created_at REAL NOT NULL,
            stats TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX messages_by_conversation ON messages(conversation_id, seq)",
        """CREATE TABLE attachments (
            message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mime TEXT NOT NULL,
            token_cost INTEGER,
            extracted_text TEXT,
            page_count INTEGER,
            coverage REAL,
            PRIMARY KEY (message_id, position))""",
        "CREATE INDEX attachments_by_sha ON attachments(sha256)",
    ),
    (  # v2: full-text search. A streaming answer is indexed once it stops changing.
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
            WHEN new.status != 'streaming' BEGIN
            INSERT INTO messages_fts(rowid, text) VALUES (new.seq, new.text); END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
            WHEN old.status != 'streaming' BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text)
            VALUES ('delete', old.seq, old.text); END""",
        # one trigger, so the old entry is surely removed before the new one is added
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, status ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text)
            SELECT 'delete', old.seq, old.text WHERE old.status != 'streaming';
            INSERT INTO messages_fts(rowid, text)
            SELECT new.seq, new.text WHERE new.status != 'streaming'; END""",
        """INSERT INTO messages_fts(rowid, text)
            SELECT seq, text FROM messages WHERE status != 'streaming'""",
    ),
    (  # v3: pins and folders
        "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE conversations ADD COLUMN folder TEXT",
        "CREATE INDEX conversations_by_order ON conversations(pinned DESC, updated_at DESC)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT_MS = 10_000
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


class StoreTooNewError(RuntimeError):
    """The database was written by a newer Gemma Desk; it is left untouched."""


class CorruptDatabaseError(sqlite3.DatabaseError):
    """The file is not a readable SQLite database (or fails its integrity check)."""


class StoreError(OSError):
    """The chats could not be read or written (disk full, read-only folder, failing disk, another
    program holding the database). The message says what happened and what to do; a failed
    write changes nothing, so whatever was saved before is still there."""


# Why, and what the user can do, by SQLite's primary result code and by errno
_FULL = ("the disk is full", "Free some space, then try again.")
_READ_ONLY = ("the data folder is read-only", "Make it writable, then try again.")
_DENIED = ("permission to the data folder was denied", "Check its permissions.")
_DISK = ("the disk reported an error", "Check the disk; copy the data folder somewhere safe.")
_BUSY = ("another program kept the chat database busy", "Close it, then try again.")
_DAMAGED = ("the chat database is damaged", "Restart Gemma Desk to repair it.")
_SQLITE_REASONS = {3: _DENIED, 5: _BUSY, 6: _BUSY, 8: _READ_ONLY, 10: _DISK, 11: _DAMAGED,
                   13: _FULL, 14: ("the chat database could not be opened",
                                   "Check that the data folder exists and is writable."),
                   18: ("the text is too long to store", "Shorten it."), 26: _DAMAGED}
_ERRNO_REASONS = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EROFS: _READ_ONLY,
                  errno.EACCES: _DENIED, errno.EPERM: _DENIED, errno.EIO: _DISK,
                  errno.ENOENT: ("a file or folder is missing", ""),
                  errno.ENOTDIR: ("part of its path is a file, not a folder", "")}


def failure(exc: Exception, doing: str, where: Path) -> StoreError:
    """A StoreError for `exc`, e.g. "Gemma Desk could not save your chat: the disk is full
    (/home/ann/.local/share/gemma-desk). Free some space, then try again. ..."."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        reason, advice = _SQLITE_REASONS.get((code or 0) & 0xFF, (str(exc), ""))
        if code is None and "full" in str(exc):  # Python < 3.11 has no sqlite_errorcode
            reason, advice = _FULL
    else:
        reason, advice = _ERRNO_REASONS.get(exc.errno, (exc.strerror or str(exc), ""))
    message = f"Gemma Desk could not {doing}: {reason} ({where}). {advice}".rstrip()
    return StoreError(f"{message} Nothing saved before was lost.")


@contextmanager
def reported(doing: str, where: Path) -> Iterator[None]:
    """Raise problems with the disk or the database as a StoreError that explains them;
    programming errors (a constraint, a bad statement) pass unchanged."""
    try:
        yield
    except StoreError:
        raise
    except (sqlite3.OperationalError, sqlite3.DataError, OSError) as exc:
        raise failure(exc, doing, where) from exc
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError and not is_corruption(exc):
            raise
        raise failure(exc, doing, where) from exc


def connect(path: Path) -> sqlite3.Connection:
    """Open with the settings every connection needs (WAL, busy timeout, foreign keys,
    zeroing of deleted content). Raises CorruptDatabaseError for an unreadable file."""
    if path.exists() and path.stat().st_size > 0:
        _check_integrity(path)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), so a writer waits for
    # the busy timeout instead of failing when it upgrades a read transaction
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                         check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # a committed message survives a power cut too
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA secure_delete = ON")  # deleted text is overwritten, not just unlinked
    except sqlite3.DatabaseError as exc:
        db.close()
        if is_corruption(exc):
            raise CorruptDatabaseError(str(exc)) from exc
        raise
    return db


def _check_integrity(path: Path) -> None:
    # through a read-only connection: closing a writable one would checkpoint the WAL a killed
    # process left into the damaged file, changing the very file that is to be kept as it was
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                         timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        report = "\n".join(row[0] for row in db.execute("PRAGMA quick_check(5)"))
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise CorruptDatabaseError(str(exc)) from exc
        raise
    finally:
        db.close()
    if report != "ok":
        problems = [line for line in report.splitlines() if not line.startswith("***")]
        raise CorruptDatabaseError("; ".join(problems))


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """True for a damaged file; False for 'locked', 'busy', permissions and the like, which
    must never make us move a healthy database aside."""
    if isinstance(exc, CorruptDatabaseError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def move_aside(path: Path) -> Path:
    """Rename a corrupt database (and its WAL) to <name>.corrupt-<time>; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.replace(aside)
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:  # the last writes of a killed process may be there
        wal.replace(Path(f"{aside}-wal"))
    wal.unlink(missing_ok=True)  # an empty one holds nothing
    Path(f"{path}-shm").unlink(missing_ok=True)
    return aside


def empty_wal(db: sqlite3.Connection, wait_ms: int = 250) -> bool:
    """Move the WAL into the database file and truncate it; False if it could not be emptied.
    A reader of an older snapshot (another window) blocks this until it moves on: give up after
    `wait_ms` instead of freezing for the whole busy timeout."""
    db.execute(f"PRAGMA busy_timeout = {wait_ms}")
    try:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return busy == 0


def recovery_notice(problem: Exception, aside: Path, chats_saved: int) -> str:
    detail = " ".join(str(problem).split())[:120]
    if chats_saved:
        return (f"The chat database was damaged ({detail}). It was kept, unchanged, at {aside}. "
                f"{chats_saved} chat(s) could still be read and were copied into a new database; "
                "anything else is only in the damaged file.")
    return (f"The chat database could not be read ({detail}). It was kept, unchanged, at {aside}"
            ", and Gemma Desk started a new, empty one.")


def migrate(db: sqlite3.Connection, backup_dir: Path) -> Path | None:
    """Bring the schema to SCHEMA_VERSION. Returns the backup made first, if any."""
    version = user_version(db)
    if version > SCHEMA_VERSION:
        raise StoreTooNewError(
            f"These chats were saved by a newer Gemma Desk (database version {version}; this "
            f"version knows up to {SCHEMA_VERSION}). Update Gemma Desk to open them; "
            "nothing was changed."
        )
    if version == SCHEMA_VERSION:
        return None
    backup = backup_copy(db, backup_dir, version) if version > 0 else None
    db.execute("BEGIN IMMEDIATE")
    try:
        # another process may have migrated while we waited for the write lock
        for step in MIGRATIONS[user_version(db):]:
            for statement in step:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return backup


def user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def backup_copy(db: sqlite3.Connection, backup_dir: Path, version: int) -> Path:
    """A consistent copy of the live database (WAL included), made with the backup API."""
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = backup_dir / f"chats-v{version}-{stamp}.sqlite3"
    n = 1
    while target.exists():
        n += 1
        target = backup_dir / f"chats-v{version}-{stamp}-{n}.sqlite3"
    copy = sqlite3.connect(target)
    try:
        db.backup(copy)
    finally:
        copy.close()
    return target
