"""Full-text search over every chat (SQLite FTS5), pointing at the matching message."""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from dataclasses import dataclass

# The snippet marks its matches with these two characters; `SearchHit.parts()` splits on them.
MATCH_START, MATCH_END = "\x02", "\x03"
_WORD = re.compile(r"\w+", re.UNICODE)
# FTS5's snippet() takes time growing with the square of the matches in a message (a minute for
# a 1 MB text full of them), so longer messages get theirs cut here, around the first match
LONG_TEXT = 10_000
_CONTEXT = 80  # characters shown before the match in such a snippet; twice that after it
MAX_WORDS = 32  # a pasted page as a query is cut to its first words (FTS5 fails on thousands)

_SEARCH_SQL = f"""
    SELECT m.conversation_id, m.id, c.title, m.role, m.created_at,
           CASE WHEN length(m.text) <= {LONG_TEXT}
                THEN snippet(messages_fts, 0, ?, ?, '…', 16) END
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
    words = list(dict.fromkeys(_WORD.findall(query)))[:MAX_WORDS]
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
    hits = []
    for *fields, snippet in rows:
        if snippet is None:
            (text,) = db.execute("SELECT text FROM messages WHERE id = ?", (fields[1],)).fetchone()
            snippet = long_snippet(text, _WORD.findall(expression))
        hits.append(SearchHit(*fields, snippet))
    return hits


def long_snippet(text: str, words: list[str]) -> str:
    """A snippet of a long text around the first of `words` (the last may be a prefix), marked
    as FTS5 marks its snippets; the start of the text if no word is found."""
    pattern = _pattern(words, text)
    first = pattern.search(text)
    start, stop = _around(text, first.start() if first else 0)
    pieces, done = [], start
    for match in pattern.finditer(text, start, stop):
        pieces += [text[done:match.start()], MATCH_START, match.group(), MATCH_END]
        done = match.end()
    pieces.append(text[done:stop])
    return ("…" if start else "") + "".join(pieces) + ("…" if stop < len(text) else "")


def _pattern(words: list[str], text: str) -> re.Pattern:
    """The words as the search index matches them in `text`: any case, with or without accents
    (each letter may be any character of the text that folds to it)."""
    forms: dict[str, set[str]] = {}
    for char in set(text):  # a few dozen distinct characters, however long the text
        forms.setdefault(_fold(char), set()).add(char)

    def spelled(word: str) -> str:
        letters = ("".join(sorted({c} | forms.get(c, set()))) for c in _fold(word))
        return "".join(f"[{re.escape(chars)}]" for chars in letters)

    *whole, prefix = [spelled(word) for word in words]
    return re.compile(r"(?<!\w)(?:" + "".join(w + r"(?!\w)|" for w in whole) +
                      prefix + r"\w*)")


def _around(text: str, at: int) -> tuple[int, int]:
    """About _CONTEXT characters before `at` and twice as many after it, cut between words."""
    start, stop = max(0, at - _CONTEXT), min(len(text), at + 2 * _CONTEXT)
    if start:
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else start
    if stop < len(text):
        space = text.rfind(" ", at, stop)
        stop = space if space > at else stop
    return start, stop


def _fold(text: str) -> str:
    """Lower case without accents, character by character, as the index compares words."""
    folded = []
    for char in text:
        bare = "".join(c for c in unicodedata.normalize("NFKD", char.lower())
                       if not unicodedata.combining(c))
        folded.append(bare if len(bare) == 1 else char)
    return "".join(folded)
