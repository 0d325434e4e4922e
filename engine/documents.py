"""Text out of local files: plain text, Markdown, code, CSV/JSON/YAML/logs, PDF, DOCX and HTML.

A document keeps its structure (pages, headings, line ranges) so that a long file can be split
at natural boundaries and every answer can say exactly which part of the file it read.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.docx_text import feed_docx
from engine.errors import DocumentError
from engine.html_text import feed_html
from engine.text_encoding import NotText, decode_text

MAX_BYTES = 256 * 1024 * 1024
MAX_UNZIPPED = 512 * 1024 * 1024  # a DOCX is a zip: refuse decompression bombs
WORD_SUFFIXES = {".docx", ".docm", ".dotx", ".dotm"}
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
    data = _read_bytes(path)
    if not data:
        raise DocumentError(f"{name} is empty")
    kind = detect_kind(name, data)
    unit, total, sections, encoding = READERS[kind](name, data)
    if not any(s.text.strip() for s in sections):
        raise DocumentError(f"{name} contains no text")
    return Document(name, kind, unit, total, sections, len(data),
                    hashlib.sha256(data).hexdigest(), encoding)


def _read_bytes(path: Path) -> bytes:
    name = path.name
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise DocumentError(f"{name} is a folder; attach the files inside it one by one")
        if not stat.S_ISREG(info.st_mode):  # a pipe or a device could block or never end
            raise DocumentError(f"{name} is not a regular file")
        if info.st_size > MAX_BYTES:
            raise DocumentError(f"{name} is {info.st_size / 2**20:,.0f} MB; files up to "
                                f"{MAX_BYTES // 2**20} MB can be read")
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{name} cannot be opened: {exc.strerror or exc}") from exc


def detect_kind(name: str, data: bytes) -> str:
    suffix = Path(name).suffix.lower()
    # Readers accept a PDF header a little way in (after junk some servers prepend)
    if data.startswith(b"%PDF-") or suffix == ".pdf" and b"%PDF-" in data[:1024]:
        return "pdf"
    if suffix == ".pdf":
        raise DocumentError(f"{name} is named .pdf but is not a PDF file")
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(name, suffix, data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # OLE: old Office files and encrypted new ones
        if "EncryptedPackage".encode("utf-16-le") in data:
            raise DocumentError(f"{name} is a password-protected Office document. Open it in "
                                "Word, save a copy without the password, and attach that.")
        raise DocumentError(f"{name} is in the old binary Office format; save it as .docx or PDF")
    if suffix in WORD_SUFFIXES:
        raise DocumentError(f"{name} is named {suffix} but is not a Word document")
    return DATA_KINDS.get(suffix, "code" if suffix in CODE_SUFFIXES else "text")


def _zip_kind(name: str, suffix: str, data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        what = "Word document" if suffix in WORD_SUFFIXES else "ZIP file"
        raise DocumentError(f"{name} is a damaged or incomplete {what} and cannot be opened. "
                            "Save or download it again.") from exc
    if "word/document.xml" in members:
        return "docx"
    if suffix in WORD_SUFFIXES:
        raise DocumentError(f"{name} is named {suffix} but is a ZIP archive without a Word "
                            "document inside")
    raise DocumentError(f"{name} is a ZIP-based file, not a document Gemma Desk can read (it "
                        f"reads {SUPPORTED}); save other office files as .docx or PDF first")


# -- text files --------------------------------------------------------------------------


def _decoded(name: str, data: bytes, declared: str = "") -> tuple[str, str]:
    try:
        return decode_text(data, declared)
    except NotText as exc:
        raise DocumentError(f"{name} looks like a binary file ({exc}), not a document. "
                            f"Gemma Desk reads {SUPPORTED}.") from exc


def _read_text(name: str, data: bytes):
    text, encoding = _decoded(name, data)
    text = text.rstrip("\n")
    lines = text.count("\n") + 1
    return "line", lines, [Section(text, 1, lines)], encoding


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
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise DocumentError(f"{name} is a password-protected (encrypted) PDF. Open it in a "
                                "PDF viewer, save an unprotected copy, and attach that.")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentError:
        raise
    except DependencyError as exc:  # AES needs an optional library
        raise DocumentError(f"{name} is an encrypted PDF that this installation cannot "
                            f"decrypt ({exc}). Save an unprotected copy and attach that.") from exc
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise DocumentError(f"{name} is a damaged or incomplete PDF that cannot be read ({exc}). "
                            "Download or export it again.") from exc
    if not any(pages):
        raise DocumentError(f"{name} has no text layer (it looks like scanned page images). "
                            "Run it through text recognition (OCR) first.")
    sections = [Section(text, n, n, f"Page {n}") for n, text in enumerate(pages, 1)]
    return "page", len(pages), sections, ""


def _opens_without_password(reader) -> bool:
    """Many PDFs are encrypted only against editing: the empty user password opens them."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. an encryption method pypdf does not know: treat as locked
        return False


# -- DOCX --------------------------------------------------------------------------------


def _read_docx(name: str, data: bytes):
    builder = SectionBuilder()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = _unzipped(name, archive, "word/document.xml")
            styles = _unzipped(name, archive, "word/styles.xml")
        feed_docx(document, styles, builder)
    except DocumentError:
        raise
    except Exception as exc:  # bad ZIP data, bad XML, or XML that is not Word's
        raise DocumentError(f"{name} is a damaged Word document that cannot be read ({exc}). "
                            "Open it in Word and save it again.") from exc
    return builder.result()


def _unzipped(name: str, archive: zipfile.ZipFile, member: str) -> bytes | None:
    """A member's bytes (None if absent); ZIP reading stops at the declared size, so check it."""
    if member not in archive.namelist():
        return None
    if archive.getinfo(member).file_size > MAX_UNZIPPED:
        raise DocumentError(f"{name} unpacks to more than {MAX_UNZIPPED // 2**20} MB")
    return archive.read(member)


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
    declared = re.search(rb"""<(?:meta|\?xml)[^>]*?(?:charset|encoding)\s*=\s*["']?([\w.:-]+)""",
                         data[:4096], re.IGNORECASE)
    text, encoding = _decoded(name, data, declared.group(1).decode() if declared else "")
    builder = SectionBuilder()
    feed_html(text, builder)
    unit, total, sections, _ = builder.result()
    return unit, total, sections, encoding


READERS = {"pdf": _read_pdf, "docx": _read_docx, "html": _read_html, "markdown": _read_markdown,
           **{kind: _read_text for kind in ("text", "code", "csv", "json", "yaml", "log")}}
