"""Files waiting in the composer: what they are, what they cost, what went wrong with them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".mpo", ".webp", ".gif", ".bmp", ".tif",
                  ".tiff", ".avif", ".heic", ".heif"}  # HEIC is refused by name, as a picture
_keys = itertools.count(1)


@dataclass
class PendingAttachment:
    path: Path  # the user's file, or a temporary file for pasted pictures
    name: str
    kind: str  # "image" or "document"
    size: int
    key: int  # ties the worker's answer about this file to this chip
    token_cost: int | None = None  # None while counting
    error: str | None = None  # set when the file cannot be used
    extracted_text: str | None = None  # documents: the text the model will read
    page_count: int | None = None
    note: str = ""  # e.g. "this model cannot see images"

    @classmethod
    def from_path(cls, path: str | Path, name: str | None = None) -> PendingAttachment:
        path = Path(path)
        kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "document"
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        item = cls(path, name or path.name, kind, size, next(_keys))
        if not path.is_file():
            item.error = "The file cannot be found or is not a regular file."
        elif size == 0:
            item.error = "The file is empty."
        return item

    @property
    def ready(self) -> bool:
        return self.error is None and self.token_cost is not None


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
