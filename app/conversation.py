"""Qt-free domain objects of a chat: Conversation, Message, Attachment.

They are plain dataclasses; the store (app/store.py) reads and writes them, the GUI shows them.
Times are Unix seconds (float). Ids are 32-character hex strings (uuid4), so a chat exported from
one machine can be imported on another without clashing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("user", "model")
# streaming: being written right now; interrupted: the app died while it was streaming;
# stopped: the user pressed Stop; error: the engine failed (the reason is in stats["error"])
STATUSES = ("complete", "streaming", "interrupted", "error", "stopped")
ATTACHMENT_KINDS = ("image", "document")
UNTITLED = "New chat"


def new_id() -> str:
    return uuid.uuid4().hex


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass
class Attachment:
    """A file the user attached, kept content-addressed (by sha256) in the data folder."""

    kind: str  # "image" or "document"
    name: str  # the original file name, shown to the user and used on export
    sha256: str  # hex digest of the file's bytes; also its name under data_dir()/attachments/
    size: int  # bytes
    path: Path  # the content-addressed copy; never the user's original
    mime: str = "application/octet-stream"
    token_cost: int | None = None  # tokens it takes in the prompt, once known
    extracted_text: str | None = None  # documents: the text the model reads
    page_count: int | None = None  # documents with pages (pdf)
    coverage: float | None = None  # fraction of the document given to the model (1.0 = all)

    def __post_init__(self) -> None:
        _check(self.kind, ATTACHMENT_KINDS, "attachment kind")
        self.path = Path(self.path)


@dataclass
class Message:
    """One turn. `stats` holds engine numbers (tokens_per_s, ttft_s, ...) and, for status
    "error", the reason under "error"."""

    id: str
    conversation_id: str
    role: str  # "user" or "model"
    text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    status: str = "complete"
    created_at: float = 0.0
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.role, ROLES, "message role")
        _check(self.status, STATUSES, "message status")

    @property
    def error(self) -> str | None:
        return self.stats.get("error")

    @property
    def can_continue(self) -> bool:
        """True for an answer cut short (crash, Stop, error) that the user may ask to continue."""
        return self.role == "model" and self.status in ("interrupted", "stopped", "error")


@dataclass
class Conversation:
    """A chat. `messages` is filled by Store.get_conversation and left empty by
    Store.list_conversations (which only needs the list's columns)."""

    id: str
    title: str = ""  # empty until the first user message names it (or the user renames it)
    created_at: float = 0.0
    updated_at: float = 0.0
    pinned: bool = False
    folder: str | None = None
    system_prompt: str = ""
    messages: list[Message] = field(default_factory=list)

    @property
    def display_title(self) -> str:
        return self.title or UNTITLED


def title_from_text(text: str, max_words: int = 6, max_chars: int = 60) -> str:
    """The first few words of a message, as a chat title ("" for a message without words)."""
    words = text.split()[:max_words]
    title = " ".join(words)
    if len(title) > max_chars:
        title = title[: max_chars - 1].rstrip() + "…"
    return title
