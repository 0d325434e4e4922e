"""SQLite persistence of chats, Qt-free. One Store per process; safe to call from any thread.

Every write is its own committed transaction, so whatever a method returned is on disk. The
database is data_dir()/chats.sqlite3 in WAL mode with a busy timeout: two processes may use it at
once without corrupting it (the app still runs one instance per data folder, see
`acquire_instance_lock`). Opening it:
- upgrades an older schema after writing a backup copy (`backup_path`),
- moves a corrupt file aside, unchanged, and copies what can still be read from it into a new
  one (`recovered_from_corruption`, `recovery_notice`),
- marks answers left "streaming" by a crash as "interrupted" (`interrupted_ids`),
- refuses a database from a newer app version (StoreTooNewError), touching nothing.
A full disk, a read-only folder or a failing disk is a StoreError (an OSError) whose message says
what happened and what to do; the failed write changes nothing already saved.
"""

from __future__ import annotations

import json
import mimetypes
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from app import store_db, store_rows
from app.conversation import (
    STATUSES,
    Attachment,
    Conversation,
    Message,
    new_id,
)
from app.paths import data_dir
from app.store_db import StoreError, StoreTooNewError
from app.store_files import AttachmentFiles, acquire_instance_lock, release_instance_lock
from app.store_rows import clean
from app.store_saver import StreamingSaver
from app.store_search import SearchHit, search

__all__ = ["Store", "StoreError", "StoreTooNewError", "SearchHit", "StreamingSaver",
           "acquire_instance_lock", "release_instance_lock"]

FINAL_STATUSES = tuple(s for s in STATUSES if s != "streaming")


class Store:
    """The chats on disk. Methods return plain objects (app/conversation.py); a missing id is a
    KeyError, a bad role/status a ValueError, a disk or database problem a StoreError. Close it
    (or use `with`) when the app quits."""

    def __init__(self, path: Path | None = None, *, recover: bool = True) -> None:
        """Open (or create) the chat database; `recover=False` leaves "streaming" answers alone
        (for a process that is not the app itself)."""
        self.path = Path(path) if path is not None else data_dir() / "chats.sqlite3"
        self.files = AttachmentFiles(self.path.parent / "attachments")
        self.recovered_from_corruption: Path | None = None
        self.recovery_notice: str | None = None
        self._lock = threading.RLock()
        self._unsent_files: set[str] = set()  # added, not yet in a message: never delete these
        with store_db.reported("open your chats", self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db, damage = self._open()
            try:
                self.backup_path = store_db.migrate(self._db, self.path.parent / "backups")
                if damage is not None:
                    saved = store_rows.salvage(self.recovered_from_corruption, self._db)
                    self.recovery_notice = store_db.recovery_notice(
                        damage, self.recovered_from_corruption, saved)
                self.interrupted_ids = self.recover_interrupted() if recover else []
                if recover:
                    self.files.remove_leftovers()
            except BaseException:
                self._db.close()
                raise

    def _open(self) -> tuple[sqlite3.Connection, Exception | None]:
        """The connection, and what was wrong with the file if it had to be moved aside."""
        try:
            return store_db.connect(self.path), None
        except store_db.CorruptDatabaseError as exc:
            self.recovered_from_corruption = store_db.move_aside(self.path)
            return store_db.connect(self.path), exc

    def close(self) -> None:
        """Close the database, first emptying the WAL (where a deleted chat's text may linger
        if another reader kept `delete_conversation` from doing so)."""
        with self._lock:
            with suppress(sqlite3.Error):  # closing must not fail (nor fail twice)
                store_db.empty_wal(self._db)
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _use(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock, store_db.reported(doing, self.path.parent):
            yield self._db

    @contextmanager
    def _write(self, doing: str = "save your chat") -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy database is waited for, not failed
        with self._use(doing) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")  # a full disk often shows only here
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # one snapshot for queries that belong together, even while another process writes
        with self._use("read your chats") as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")

    # conversations

    def create_conversation(self, title: str = "", system_prompt: str = "",
                            folder: str | None = None) -> Conversation:
        now = time.time()
        chat = Conversation(new_id(), clean(title), now, now, False, clean(folder),
                            clean(system_prompt))
        with self._write() as db:
            store_rows.insert_conversation(db, chat)
        return chat

    def list_conversations(self, folder: str | None = None) -> list[Conversation]:
        """Pinned first, then most recently updated first; `messages` left empty."""
        where, args = ("WHERE folder = ?", (folder,)) if folder is not None else ("", ())
        where += " ORDER BY pinned DESC, updated_at DESC"
        with self._read() as db:
            return store_rows.conversations(db, where, args)

    def get_conversation(self, conversation_id: str) -> Conversation:
        """The chat with its messages in order. KeyError if there is no such chat."""
        with self._read() as db:
            found = store_rows.conversations(db, "WHERE id = ?", (conversation_id,))
            if not found:
                raise KeyError(f"no conversation with id {conversation_id!r}")
            found[0].messages = store_rows.messages(db, "m.conversation_id = ?",
                                                    (conversation_id,), self.files.path_for)
        return found[0]

    def has_conversation(self, conversation_id: str) -> bool:
        with self._use("read your chats") as db:
            return db.execute("SELECT 1 FROM conversations WHERE id = ?",
                              (conversation_id,)).fetchone() is not None

    def rename(self, conversation_id: str, title: str) -> None:
        self._set(conversation_id, "title", title.strip())

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self._set(conversation_id, "pinned", int(pinned))

    def set_folder(self, conversation_id: str, folder: str | None) -> None:
        self._set(conversation_id, "folder", folder or None)

    def set_system_prompt(self, conversation_id: str, prompt: str) -> None:
        self._set(conversation_id, "system_prompt", prompt)

    def folders(self) -> list[str]:
        with self._use("read your chats") as db:
            names = db.execute("SELECT DISTINCT folder FROM conversations "
                               "WHERE folder IS NOT NULL ORDER BY folder").fetchall()
        return [name for (name,) in names]

    def _set(self, conversation_id: str, column: str, value) -> None:
        with self._write() as db:
            changed = db.execute(f"UPDATE conversations SET {column} = ? WHERE id = ?",
                                 (clean(value), conversation_id)).rowcount
        if not changed:
            raise KeyError(f"no conversation with id {conversation_id!r}")

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete a chat so that it is gone: its rows, its search entries, the attachment files
        no other chat uses, and its text in the database file (overwritten by secure_delete,
        the search index merged, the WAL checkpointed and truncated). Returns False when another
        reader kept the WAL from being truncated (the old text then lingers there until the
        next delete or close)."""
        with self._write("delete the chat") as db:
            shas = store_rows.attachment_shas(db, "m.conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self._remove_unused_files(shas)
        return self.scrub()

    def scrub(self) -> bool:
        """Leave no trace of deleted text: rewrite the search index without deleted entries and
        move everything out of the WAL. True when the WAL could be emptied."""
        with self._write("erase deleted text") as db:
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        with self._use("erase deleted text") as db:
            return store_db.empty_wal(db)

    # messages

    def add_message(self, conversation_id: str, role: str, text: str = "",
                    attachments: Iterable[Attachment] = (), status: str = "complete",
                    stats: dict | None = None) -> Message:
        """Commit a message now (the user's, before the engine sees it; or an answer about to
        stream, with status "streaming"). The first user message names an untitled chat."""
        message = Message(new_id(), conversation_id, role, clean(text), list(attachments),
                          status, time.time(), dict(stats or {}))
        with self._write() as db:
            if not store_rows.insert_message(db, message):
                raise KeyError(f"no conversation with id {conversation_id!r}")
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                       (message.created_at, conversation_id))
            if role == "user":
                db.execute("UPDATE conversations SET title = ? WHERE id = ? AND title = ''",
                           (store_rows.title_for(message), conversation_id))
            self._unsent_files -= {a.sha256 for a in message.attachments}
        return message

    def get_message(self, message_id: str) -> Message:
        with self._read() as db:
            found = store_rows.messages(db, "m.id = ?", (message_id,), self.files.path_for)
        if not found:
            raise KeyError(f"no message with id {message_id!r}")
        return found[0]

    def update_message_text(self, message_id: str, text: str) -> None:
        """Replace a message's text: cheap enough to call every second while it streams."""
        with self._use("save the answer") as db:
            db.execute("UPDATE messages SET text = ? WHERE id = ?", (clean(text), message_id))

    def finish_message(self, message_id: str, status: str, stats: dict | None = None,
                       text: str | None = None) -> None:
        """Close a streamed answer: status "complete", "stopped", "error" (reason in
        stats["error"]) or "interrupted"; optionally the final text."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a finished message's status is one of {', '.join(FINAL_STATUSES)}"
                             f", not {status!r}")
        with self._write("save the answer") as db:
            sets, args = "status = ?, stats = ?", [status, json.dumps(stats or {})]
            if text is not None:
                sets, args = sets + ", text = ?", args + [clean(text)]
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*args, message_id))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = "
                       "(SELECT conversation_id FROM messages WHERE id = ?)",
                       (time.time(), message_id))

    def delete_message(self, message_id: str) -> None:
        self._delete_messages("m.id = ?", (message_id,))

    def delete_messages_after(self, message_id: str) -> None:
        """Delete every later message of the same chat (edit-and-resend, regenerate)."""
        self._delete_messages(
            "m.conversation_id = (SELECT conversation_id FROM messages WHERE id = ?) "
            "AND m.seq > (SELECT seq FROM messages WHERE id = ?)", (message_id, message_id))

    def _delete_messages(self, where: str, args: tuple) -> None:
        with self._write("delete the message") as db:
            shas = store_rows.attachment_shas(db, where, args)
            db.execute(f"DELETE FROM messages WHERE seq IN (SELECT seq FROM messages AS m "
                       f"WHERE {where})", args)
        self._remove_unused_files(shas)

    def recover_interrupted(self) -> list[str]:
        """Mark answers still "streaming" (the app died mid-answer) as "interrupted"; their text
        up to the last save is kept. Returns their ids."""
        with self._write("open your chats") as db:
            ids = [row[0] for row in db.execute(
                "SELECT id FROM messages WHERE status = 'streaming'").fetchall()]
            db.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
        return ids

    # attachments

    def add_attachment_file(self, source: Path | str | bytes, name: str | None = None,
                            kind: str = "document", mime: str | None = None,
                            **details) -> Attachment:
        """Copy a file (or bytes) into the data folder under its sha256 and describe it. Pass the
        result to add_message; `details` are Attachment fields such as extracted_text."""
        if name is None:
            if isinstance(source, (bytes, bytearray)):
                raise ValueError("attaching raw bytes needs a file name")
            name = Path(source).name
        source = Path(source) if isinstance(source, str) else source
        sha, size, stored = self.files.add(source, name)
        with self._lock:
            self._unsent_files.add(sha)
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        details = {key: clean(value) for key, value in details.items()}
        return Attachment(kind, clean(name), sha, size, stored, mime, **details)

    def _remove_unused_files(self, shas: set[str]) -> None:
        with self._use("remove the attachment files") as db:
            for sha in shas - self._unsent_files:
                if not db.execute("SELECT 1 FROM attachments WHERE sha256 = ?",
                                  (sha,)).fetchone():
                    self.files.remove(sha)

    # search and import

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages containing every word of `query` (the last word may be a prefix), best
        first. Answers still streaming are found once they end."""
        with self._use("search your chats") as db:
            return search(db, query, limit)

    def insert_conversation(self, chat: Conversation) -> None:
        """Write a complete chat as it is, ids and times included (used by import). Its
        attachment files must already be in the store (add_attachment_file)."""
        with self._write("import the chat") as db:
            store_rows.insert_conversation(db, chat)
            for message in chat.messages:
                store_rows.insert_message(db, message)
                self._unsent_files -= {a.sha256 for a in message.attachments}

    def ids_in_use(self, chat: Conversation) -> bool:
        with self._use("read your chats") as db:
            return store_rows.ids_in_use(db, [chat.id] + [m.id for m in chat.messages])
