"""Rows <-> domain objects for the store (SQL that several Store methods share), and rows
copied out of a damaged database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from app.conversation import Attachment, Conversation, Message, title_from_text

CONVERSATION_COLUMNS = "id, title, created_at, updated_at, pinned, folder, system_prompt"
MESSAGE_COLUMNS = "id, conversation_id, role, text, status, created_at, stats"
ATTACHMENT_COLUMNS = ("kind, name, sha256, size, mime, token_cost, extracted_text, "
                      "page_count, coverage")


def conversations(db, where: str = "", args: tuple = ()) -> list[Conversation]:
    rows = db.execute(f"SELECT {CONVERSATION_COLUMNS} FROM conversations {where}", args)
    return [Conversation(id_, title, created, updated, bool(pinned), folder, prompt)
            for id_, title, created, updated, pinned, folder, prompt in rows.fetchall()]


def messages(db, where: str, args: tuple, path_for: Callable[[str], Path]) -> list[Message]:
    """Messages matching `where` (on the alias m) in chat order, with their attachments; two
    queries however many messages there are."""
    rows = db.execute(f"SELECT {_aliased('m', MESSAGE_COLUMNS)} FROM messages AS m "
                      f"WHERE {where} ORDER BY m.seq", args).fetchall()
    files: dict[str, list[Attachment]] = {}
    for message_id, kind, name, sha, size, mime, *rest in db.execute(
            f"SELECT a.message_id, {_aliased('a', ATTACHMENT_COLUMNS)} FROM attachments AS a "
            f"JOIN messages AS m ON m.id = a.message_id WHERE {where} "
            "ORDER BY a.message_id, a.position", args):
        files.setdefault(message_id, []).append(
            Attachment(kind, name, sha, size, path_for(sha), mime, *rest))
    return [Message(*row[:4], files.get(row[0], []), row[4], row[5], json.loads(row[6]))
            for row in rows]


def _aliased(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


def clean(text):
    """Text as SQLite can store it (anything else unchanged). Python strings may hold UTF-16
    surrogates (from a JSON file, a clipboard, a torn emoji) that UTF-8 cannot encode: pairs are
    joined into their character, a lone half becomes U+FFFD, instead of the whole save failing."""
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def insert_conversation(db, chat: Conversation) -> None:
    db.execute(f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (chat.id, clean(chat.title), chat.created_at, chat.updated_at, int(chat.pinned),
                clean(chat.folder), clean(chat.system_prompt)))


def insert_message(db, message: Message) -> bool:
    """Insert a message and its attachments; False if its conversation does not exist."""
    inserted = db.execute(
        f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ? "
        "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?)",
        (message.id, message.conversation_id, message.role, clean(message.text), message.status,
         message.created_at, json.dumps(message.stats), message.conversation_id)).rowcount
    if not inserted:
        return False
    for position, a in enumerate(message.attachments):
        db.execute(f"INSERT INTO attachments (message_id, position, {ATTACHMENT_COLUMNS}) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (message.id, position, a.kind, clean(a.name), a.sha256, a.size, a.mime,
                    a.token_cost, clean(a.extracted_text), a.page_count, a.coverage))
    return True


def title_for(message: Message) -> str:
    names = [a.name for a in message.attachments]
    return title_from_text(message.text) or title_from_text(" ".join(names))


def attachment_shas(db, where: str, args: tuple) -> set[str]:
    rows = db.execute("SELECT DISTINCT a.sha256 FROM attachments AS a JOIN messages AS m "
                      f"ON m.id = a.message_id WHERE {where}", args).fetchall()
    return {row[0] for row in rows}


def ids_in_use(db, ids: list[str]) -> bool:
    """True if any of `ids` is already a chat's or a message's."""
    marks = ", ".join("?" * len(ids))
    row = db.execute(f"SELECT (SELECT count(*) FROM conversations WHERE id IN ({marks})) + "
                     f"(SELECT count(*) FROM messages WHERE id IN ({marks}))", ids + ids).fetchone()
    return row[0] > 0


# what can be copied out of a damaged database: (table, its key, column naming its parent, the
# parent's table); a row whose parent was lost is left behind
_SALVAGE = (("conversations", "id", None, None),
            ("messages", "id", "conversation_id", "conversations"),
            ("attachments", None, "message_id", "messages"))


def salvage(damaged: Path, db: sqlite3.Connection) -> int:
    """Copy every row that can still be read from a damaged database into `db` (a new one) and
    return how many chats were saved. The damaged file is opened read-only and stays as it was."""
    wal = Path(f"{damaged}-wal")
    # read-only, and "immutable" (no -wal or -shm made beside it) unless a WAL is there to read
    mode = "mode=ro" if wal.exists() else "immutable=1"
    try:
        old = sqlite3.connect(f"{damaged.resolve().as_uri()}?{mode}", uri=True)
    except sqlite3.Error:
        return 0
    kept: dict[str, set] = {}
    try:
        db.execute("BEGIN IMMEDIATE")
        for table, key, parent, parent_table in _SALVAGE:
            columns = [c for c in _columns(old, table) if c in _columns(db, table)]
            usable = {key, parent} - {None} <= set(columns)
            rows = _readable_rows(old, table, columns) if usable else []
            if parent:
                rows = [row for row in rows if row[columns.index(parent)] in kept[parent_table]]
            if rows:
                db.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES "
                               f"({', '.join('?' * len(columns))})", rows)
            kept[table] = {row[columns.index(key)] for row in rows} if key else set()
        db.execute("COMMIT")
    except sqlite3.DatabaseError:
        return 0  # best effort: the damaged file is still there, unchanged
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        old.close()
        Path(f"{damaged}-shm").unlink(missing_ok=True)  # made by the read-only connection
    return len(kept["conversations"])


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return []


def _readable_rows(db: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple]:
    """Rows in rowid order up to the first damaged page, then from the end back towards it."""
    found: dict[int, tuple] = {}
    for order in ("ASC", "DESC"):
        try:
            for rowid, *values in db.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} "
                                             f"ORDER BY rowid {order}"):
                found[rowid] = tuple(values)
            return [found[rowid] for rowid in sorted(found)]  # read to the end: no damage
        except sqlite3.DatabaseError:
            pass
    return [found[rowid] for rowid in sorted(found)]
