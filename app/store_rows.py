"""Rows <-> domain objects for the store (SQL that several Store methods share)."""

from __future__ import annotations

import json
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


def insert_conversation(db, chat: Conversation) -> None:
    db.execute(f"INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (chat.id, chat.title, chat.created_at, chat.updated_at, int(chat.pinned),
                chat.folder, chat.system_prompt))


def insert_message(db, message: Message) -> bool:
    """Insert a message and its attachments; False if its conversation does not exist."""
    inserted = db.execute(
        f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ? "
        "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?)",
        (message.id, message.conversation_id, message.role, message.text, message.status,
         message.created_at, json.dumps(message.stats), message.conversation_id)).rowcount
    if not inserted:
        return False
    for position, a in enumerate(message.attachments):
        db.execute(f"INSERT INTO attachments (message_id, position, {ATTACHMENT_COLUMNS}) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (message.id, position, a.kind, a.name, a.sha256, a.size, a.mime,
                    a.token_cost, a.extracted_text, a.page_count, a.coverage))
    return True


def title_for(message: Message) -> str:
    names = [a.name for a in message.attachments]
    return title_from_text(message.text) or title_from_text(" ".join(names))


def attachment_shas(db, where: str, args: tuple) -> set[str]:
    rows = db.execute("SELECT DISTINCT a.sha256 FROM attachments AS a JOIN messages AS m "
                      f"ON m.id = a.message_id WHERE {where}", args).fetchall()
    return {row[0] for row in rows}
