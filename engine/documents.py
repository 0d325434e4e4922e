"""Text out of local files: plain text, Markdown, code, CSV/JSON/YAML/logs, PDF, DOCX and HTML.

A document keeps its structure (pages, headings, line ranges) so that a long file can be split
at natural boundaries and every answer can say exactly which part of the file it read.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DocumentError
from engine.html_text import feed_html

MAX_BYTES = 256 * 1024 * 1024
MAX_UNZIPPED = 512 * 1024 * 1024  # a DOCX is a zip: refuse decompression bombs
SUPPORTED = "text, Markdown, source code, CSV, JSON, YAML, logs, PDF, DOCX and HTML"
DATA_KINDS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
              ".yaml": "yaml", ".yml": "yaml", ".log": "log", ".md": "markdown",
              ".markdown": "markdown", ".htm": "html", ".html": "html", ".xhtml": "html"}
CODE_SUFFIXES = set(
    ".py .pyi .js .mjs .ts .tsx .jsx .c .h .cc .cpp .hpp .cxx .java .kt .kts .go .rs .rb .php "
    ".swift .cs .m .mm .sh .bash .zsh .fish .ps1 .bat .sql .r .scala .lua .pl .hs .ml .ex .exs "
    ".erl .clj .dart .jl .vue .svelte .css .scss .less .xml .toml .ini .cfg .conf .gradle "
    ".cmake .mk .proto .tex".split()
)
BOMS = [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")]
HARMLESS_CONTROLS = set("\t\n\r\f\v\x1b")


@dataclass(frozen=True)
class Section:
    """A run of the document: one page, one heading's section, or a range of lines."""

    text: str
    start: int  # first page, line or section number (1-based), in the document's unit
    end: int  # last one, inclusive
    title: str = ""


@dataclass
class Document:
    name: str
    kind: str  # text, markdown, code, csv, json, yaml, log, pdf, docx, html
    unit: str  # what start/end count: "page" (PDF), "section" (DOCX, HTML) or "line"
    total: int  # pages, sections or lines in the whole file
    sections: list[Section]
    size: int  # bytes on disk
    sha256: str
    encoding: str = ""  # for text files: the encoding that was detected

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text)

    @property
    def pages(self) -> list[tuple[int, str]]:
        """(page number, text) of each page; empty for documents without pages."""
        return [(s.start, s.text) for s in self.sections] if self.unit == "page" else []


def extract(path) -> Document:
    """Read a file's text, or raise DocumentError with a message that names the file."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError(f"{name} is {size / 2**20:,.0f} MB; files up to "
                                f"{MAX_BYTES // 2**20} MB can be read")
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{name} cannot be opened: {exc.strerror or exc}") from exc
    if not data:
        raise DocumentError(f"{name} is empty")
    kind = detect_kind(name, data)
    unit, total, sections, encoding = READERS[kind](name, data)
    if not any(s.text.strip() for s in sections):
        raise DocumentError(f"{name} contains no text")
    return Document(name, kind, unit, total, sections, len(data),
                    hashlib.sha256(data).hexdigest(), encoding)


def detect_kind(name: str, data: bytes) -> str:
    suffix = Path(name).suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if suffix == ".pdf":
        raise DocumentError(f"{name} is named .pdf but is not a PDF file")
    if data.startswith(b"PK\x03\x04"):
        if _zip_holds(data, "word/document.xml"):
            return "docx"
        raise DocumentError(f"{name} is a ZIP-based file, not a document Gemma Desk can read "
                            f"(it reads {SUPPORTED})")
    if suffix == ".docx":
        raise DocumentError(f"{name} is named .docx but is not a Word document")
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise DocumentError(f"{name} is in the old binary Office format; save it as .docx or PDF")
    return DATA_KINDS.get(suffix, "code" if suffix in CODE_SUFFIXES else "text")


# -- text files --------------------------------------------------------------------------


def decode_text(name: str, data: bytes) -> tuple[str, str]:
    """(text with \\n line ends, encoding): BOMs first, then UTF-16 sniffing, UTF-8, 8-bit."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            text = data[len(bom):].decode(encoding, errors="replace")
            return _checked(name, text), encoding + " with BOM"
    encoding = _utf16_without_bom(data)
    if encoding:
        return _checked(name, data.decode(encoding, errors="replace")), encoding
    if b"\x00" in data[:65536]:
        raise _binary(name, "it contains NUL bytes")
    try:
        return _checked(name, data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        text, encoding = _legacy_8bit(data)
        return _checked(name, text), encoding


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


def _checked(name: str, text: str) -> str:
    sample = text[:65536]
    controls = sum(c < " " and c not in HARMLESS_CONTROLS or c == "\x7f" for c in sample)
    if "\x00" in sample or controls > 0.05 * max(1, len(sample)):
        raise _binary(name, "most of it is not readable text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _binary(name: str, why: str) -> DocumentError:
    return DocumentError(f"{name} looks like a binary file ({why}), not a document. "
                         f"Gemma Desk reads {SUPPORTED}.")


def _read_text(name: str, data: bytes):
    text, encoding = decode_text(name, data)
    text = text.rstrip("\n")
    lines = text.split("\n")
    return "line", len(lines), [Section(text, 1, len(lines))], encoding


def _read_markdown(name: str, data: bytes):
    """Sections start at ATX headings ("## Title") outside fenced code blocks."""
    unit, total, (whole,), encoding = _read_text(name, data)
    lines, sections, start, title, fence = whole.text.split("\n"), [], 1, "", None
    for number, line in enumerate(lines, 1):
        marker = re.match(r" {0,3}(```+|~~~+)", line)
        if marker and (fence is None or marker.group(1).startswith(fence)):
            fence = None if fence else marker.group(1)
        heading = None if fence else re.match(r" {0,3}#{1,6}\s+(.*?)[\s#]*$", line)
        if heading and number > start:
            sections.append(Section("\n".join(lines[start - 1:number - 1]), start, number - 1,
                                    title))
        if heading:
            start, title = number, heading.group(1)
    sections.append(Section("\n".join(lines[start - 1:]), start, total, title))
    return unit, total, sections, encoding


# -- PDF ---------------------------------------------------------------------------------


def _read_pdf(name: str, data: bytes):
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise DocumentError(f"{name} is a password-protected (encrypted) PDF. Open it in a "
                                "PDF viewer, save an unprotected copy, and attach that.")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise DocumentError(f"{name} is a damaged PDF that cannot be read ({exc})") from exc
    if not any(pages):
        raise DocumentError(f"{name} has no text layer (it looks like scanned page images). "
                            "Run it through text recognition (OCR) first.")
    sections = [Section(text, n, n, f"Page {n}") for n, text in enumerate(pages, 1)]
    return "page", len(pages), sections, ""


def _opens_without_password(reader) -> bool:
    """Many PDFs are encrypted only against editing: the empty user password opens them."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. AES without the optional crypto library: treat as locked
        return False


# -- DOCX --------------------------------------------------------------------------------


def _zip_holds(data: bytes, member: str) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return member in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _read_docx(name: str, data: bytes):
    import docx
    from docx.table import Table

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_UNZIPPED:
            raise DocumentError(f"{name} unpacks to more than {MAX_UNZIPPED // 2**20} MB")
    try:
        blocks = list(docx.Document(io.BytesIO(data)).iter_inner_content())
    except Exception as exc:
        raise DocumentError(f"{name} is a damaged Word document ({exc})") from exc
    builder = SectionBuilder()
    for block in blocks:
        if isinstance(block, Table):
            builder.add_lines(_table_rows(block))
            continue
        style = block.style.name if block.style is not None else ""
        level = _heading_level(style)
        if level:
            builder.heading(block.text.strip(), level)
        else:
            builder.add_lines([("- " if style.startswith("List") else "") + block.text])
    return builder.result()


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells = [cell.text.strip().replace("\n", " ") for cell in row.cells]
        merged = [c for i, c in enumerate(cells) if i == 0 or c != cells[i - 1]]
        rows.append("| " + " | ".join(merged) + " |")
    return rows


class SectionBuilder:
    """Collects lines; every heading starts a new section (unit "section")."""

    def __init__(self):
        self.sections: list[Section] = []
        self.title, self.lines = "", []

    def heading(self, title: str, level: int) -> None:
        if not title:
            return
        self._close()
        self.title, self.lines = title, ["#" * min(level, 6) + " " + title]

    def add_lines(self, lines) -> None:
        self.lines.extend(line.rstrip() for line in lines)

    def _close(self) -> None:
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines)).strip()
        if text:
            n = len(self.sections) + 1
            self.sections.append(Section(text, n, n, self.title or f"Section {n}"))

    def result(self):
        self._close()
        return "section", len(self.sections), self.sections, ""


# -- HTML --------------------------------------------------------------------------------


def _read_html(name: str, data: bytes):
    text, encoding = decode_text(name, data)
    builder = SectionBuilder()
    feed_html(text, builder)
    unit, total, sections, _ = builder.result()
    return unit, total, sections, encoding


READERS = {"pdf": _read_pdf, "docx": _read_docx, "html": _read_html, "markdown": _read_markdown,
           **{kind: _read_text for kind in ("text", "code", "csv", "json", "yaml", "log")}}
