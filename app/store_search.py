"""Full-text search over every chat (SQLite FTS5), pointing at the matching message."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

# The snippet marks its matches with these two characters; `SearchHit.parts()` splits on them.
MATCH_START, MATCH_END = "\x02", "\x03"
_WORD = re.compile(r"\w+", re.UNICODE)

_SEARCH_SQL = """
    SELECT m.conversation_id, m.id, c.title, m.role, m.created_at,
           snippet(messages_fts, 0, ?, ?, '…', 16)
    FROM messages_fts
    JOIN messages AS m ON m.seq = messages_fts.rowid
    JOIN conversations AS c ON c.id = m.conversation_id
    WHERE messages_fts MATCH ?
    ORDER BY rank
    LIMIT ?"""


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    message_id: str
    conversation_title: str
    role: str
    created_at: float
    snippet: str  # a few words around the match, matches between MATCH_START and MATCH_END

    def parts(self) -> list[tuple[str, bool]]:
        """The snippet as (text, is_match) pieces, ready to be drawn with highlights."""
        pieces: list[tuple[str, bool]] = []
        for i, chunk in enumerate(self.snippet.split(MATCH_START)):
            if i == 0:
                pieces.append((chunk, False))
                continue
            match, _, rest = chunk.partition(MATCH_END)
            pieces += [(match, True), (rest, False)]
        return [(text, is_match) for text, is_match in pieces if text]


def match_expression(query: str) -> str | None:
    """User text -> an FTS5 expression: every word must occur, the last may be a prefix (so
    results come while typing). Words are quoted, so no input is an FTS syntax error."""
    words = _WORD.findall(query)
    if not words:
        return None
    quoted = [f'"{word}"' for word in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(db: sqlite3.Connection, query: str, limit: int = 50) -> list[SearchHit]:
    expression = match_expression(query)
    if expression is None:
        return []
    rows = db.execute(_SEARCH_SQL, (MATCH_START, MATCH_END, expression, limit)).fetchall()
    return [SearchHit(*row) for row in rows]
