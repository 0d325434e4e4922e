"""Bytes of a text file as text: BOMs first, then UTF-16 sniffing, UTF-8, a declared charset
(an HTML page's own) and 8-bit guesses; line ends become \\n. Binary data raises NotText."""

from __future__ import annotations

import codecs

BOMS = [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")]
HARMLESS_CONTROLS = set("\t\n\r\f\v\x1b")


class NotText(ValueError):
    """The bytes are not text in any encoding tried; the message says why."""


def decode_text(data: bytes, declared: str = "") -> tuple[str, str]:
    """(text, the encoding it was in); raises NotText for binary data."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            text = data[len(bom):].decode(encoding, errors="replace")
            return _checked(text), encoding + " with BOM"
    data = data.rstrip(b"\x00")  # files written ahead of time (logs) are padded with NULs
    wide = data + b"\x00" * (len(data) % 2)  # ...which may have taken a UTF-16 character's half
    encoding = _utf16_without_bom(wide)
    if encoding:
        return _checked(wide.decode(encoding, errors="replace")), encoding
    if b"\x00" in data[:65536]:
        raise NotText("it contains NUL bytes")
    try:
        return _checked(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        encoding = _known_codec(declared)
        text, encoding = ((data.decode(encoding, errors="replace"), encoding) if encoding
                          else _legacy_8bit(data))
        return _checked(text), encoding


def _known_codec(charset: str) -> str:
    """Python's name for a declared charset, unless it is one the guesses handle better."""
    try:
        codec = codecs.lookup(charset).name if charset else ""
        b"x".decode(codec or "ascii", "replace")  # refuses codecs of no text ("base64")
    except LookupError:
        return ""
    return "" if codec in ("ascii", "iso8859-1", "utf-8") else codec  # Latin-1 means cp1252


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 8:
        return None
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _legacy_8bit(data: bytes) -> tuple[str, str]:
    """Western Windows text unless most letters come out accented, which means Cyrillic."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return data.decode("latin-1"), "latin-1"
    letters = [c for c in text[:65536] if c.isalpha()]
    accented = sum(ord(c) > 127 for c in letters)
    if letters and accented > 0.5 * len(letters):
        return data.decode("cp1251"), "cp1251"
    return text, "cp1252"


def _checked(text: str) -> str:
    text = text.rstrip("\x00")
    sample = text[:65536]
    controls = sum(c < " " and c not in HARMLESS_CONTROLS or c == "\x7f" for c in sample)
    if "\x00" in sample or controls > 0.05 * max(1, len(sample)):
        raise NotText("most of it is not readable text")
    # The start proved it text: NULs further on are holes (a log after a crash), not content
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
