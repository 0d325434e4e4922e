"""The chat database file: opening it safely, its schema versions, backups, corrupt files.

The schema is a list of steps; PRAGMA user_version counts the steps applied. A new database and
an upgraded one run the very same steps, so the upgrade path is exercised every time a new
database is made. Before upgrading a database that already holds chats, a copy is written to
backups/ beside it with SQLite's online backup API.
"""

from __future__ import annotations

import sqlite3
import time
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


def connect(path: Path) -> sqlite3.Connection:
    """Open with the settings every connection needs (WAL, busy timeout, foreign keys,
    zeroing of deleted content). Raises CorruptDatabaseError for an unreadable file."""
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
        _check_integrity(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        if is_corruption(exc):
            raise CorruptDatabaseError(str(exc)) from exc
        raise
    return db


def _check_integrity(db: sqlite3.Connection) -> None:
    problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
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
    if wal.exists():
        wal.replace(Path(f"{aside}-wal"))
    Path(f"{path}-shm").unlink(missing_ok=True)
    return aside


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
