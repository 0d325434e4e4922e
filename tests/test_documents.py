"""Text out of every supported kind of file; binary, encrypted and scanned files refused clearly.

Every file is generated here: PDFs are written by hand (a few objects and an xref table),
DOCX by python-docx, encrypted PDFs by pypdf.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from engine.documents import extract
from engine.errors import DocumentError


def make_pdf(path, pages: list[str]):
    """A PDF with one Helvetica text line per line of each page's text (Latin-1 only)."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    for i, text in enumerate(pages):
        shown = " T* ".join(f"({_pdf_escape(line)}) Tj" for line in text.split("\n"))
        stream = f"BT /F1 11 Tf 14 TL 72 740 Td {shown} ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream.encode('latin-1'))} >>\n"
                       f"stream\n{stream}\nendstream")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    path.write_bytes(bytes(out))
    return path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def report_pages(n: int) -> list[str]:
    return [f"Report page {p} of {n}.\nFinding {p}: the value rose to {p * 7} units."
            for p in range(1, n + 1)]


def encrypted_copy(source, target, user_password: str):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    with open(target, "wb") as handle:
        writer.write(handle)
    return target


# -- PDF ---------------------------------------------------------------------------------


def test_300_page_pdf_keeps_page_numbers(tmp_path):
    path = make_pdf(tmp_path / "report.pdf", report_pages(300))
    doc = extract(path)
    assert (doc.kind, doc.unit, doc.total, len(doc.pages)) == ("pdf", "page", 300, 300)
    number, text = doc.pages[136]
    assert number == 137
    assert "Report page 137 of 300." in text and "rose to 959 units" in text
    assert [s.start for s in doc.sections] == list(range(1, 301))
    assert doc.sections[-1].title == "Page 300"
    assert doc.size == path.stat().st_size
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_pdf_text_with_parentheses_and_accents(tmp_path):
    doc = extract(make_pdf(tmp_path / "a.pdf", ["Café (draft) costs 5\\6"]))
    assert doc.pages == [(1, "Café (draft) costs 5\\6")]


def test_encrypted_pdf_is_refused_by_name(tmp_path):
    plain = make_pdf(tmp_path / "plain.pdf", report_pages(2))
    locked = encrypted_copy(plain, tmp_path / "secret-plan.pdf", "hunter2")
    with pytest.raises(DocumentError, match=r"secret-plan\.pdf is a password-protected"):
        extract(locked)


def test_pdf_locked_only_against_editing_is_read(tmp_path):
    plain = make_pdf(tmp_path / "plain.pdf", report_pages(2))
    doc = extract(encrypted_copy(plain, tmp_path / "no-edit.pdf", ""))
    assert "Report page 2 of 2." in doc.pages[1][1]


def test_scanned_pdf_without_text_layer_is_refused(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(612, 792)
    path = tmp_path / "scan.pdf"
    with open(path, "wb") as handle:
        writer.write(handle)
    with pytest.raises(DocumentError, match=r"scan\.pdf has no text layer"):
        extract(path)


def test_damaged_and_fake_pdfs(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", report_pages(3)).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[:40])
    with pytest.raises(DocumentError, match=r"cut\.pdf"):
        extract(tmp_path / "cut.pdf")
    (tmp_path / "notes.pdf").write_text("just text")
    with pytest.raises(DocumentError, match=r"notes\.pdf is named \.pdf but is not a PDF"):
        extract(tmp_path / "notes.pdf")


# -- text encodings ----------------------------------------------------------------------

SAMPLE = "Grüße aus Köln — “quoted”, €5.\n東京の天気\nsecond line"


@pytest.mark.parametrize("encoding, label", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8 with BOM"), ("utf-16", "with BOM"),
    ("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"), ("utf-32", "with BOM"),
])
def test_unicode_encodings(tmp_path, encoding, label):
    path = tmp_path / "notes.txt"
    path.write_bytes(SAMPLE.encode(encoding))
    doc = extract(path)
    assert doc.text == SAMPLE
    assert label in doc.encoding
    assert (doc.kind, doc.unit, doc.total) == ("text", "line", 3)


@pytest.mark.parametrize("text, encoding", [
    ("Le café était très naïve — “cité” pour 5 €.", "cp1252"),
    ("Привет! Это отчёт о продажах за второй квартал.", "cp1251"),
])
def test_legacy_8bit_text(tmp_path, text, encoding):
    path = tmp_path / "old.txt"
    path.write_bytes(text.encode(encoding))
    doc = extract(path)
    assert (doc.text, doc.encoding) == (text, encoding)


def test_line_ends_are_normalised(tmp_path):
    path = tmp_path / "dos.log"
    path.write_bytes(b"one\r\ntwo\rthree\r\n")
    doc = extract(path)
    assert (doc.kind, doc.text, doc.total) == ("log", "one\ntwo\nthree", 3)


@pytest.mark.parametrize("name, kind", [
    ("data.csv", "csv"), ("data.json", "json"), ("conf.yaml", "yaml"), ("main.py", "code"),
    ("lib.rs", "code"), ("README", "text"), ("guide.md", "markdown"),
])
def test_kinds_by_name(tmp_path, name, kind):
    path = tmp_path / name
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    assert extract(path).kind == kind


def test_markdown_sections_follow_headings_outside_code(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text("Intro line\n# Install\npip install x\n```sh\n# not a heading\n```\n"
                    "## Use it ##\nrun it\n", encoding="utf-8")
    doc = extract(path)
    assert [(s.title, s.start, s.end) for s in doc.sections] == [
        ("", 1, 1), ("Install", 2, 6), ("Use it", 7, 8)]
    assert doc.sections[1].text == "# Install\npip install x\n```sh\n# not a heading\n```"


# -- binary and broken input -------------------------------------------------------------


def test_binary_file_with_nul_bytes_is_refused(tmp_path):
    path = tmp_path / "photo.txt"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(DocumentError, match=r"photo\.txt looks like a binary file"):
        extract(path)


def test_binary_file_of_control_characters_is_refused(tmp_path):
    path = tmp_path / "blob.dat"
    path.write_bytes(bytes([1, 2, 3, 4, 5, 6, 65, 66, 14, 15, 16, 17, 18]) * 500)
    with pytest.raises(DocumentError, match=r"blob\.dat looks like a binary file"):
        extract(path)


def refused(path, why: str) -> None:
    """extract(path) raises a DocumentError that names the file, then says `why` (a regex)."""
    with pytest.raises(DocumentError, match=re.escape(path.name) + " " + why):
        extract(path)


def zipped(path, member: str, content) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, content)
    return path


def test_empty_missing_and_zip_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    refused(tmp_path / "empty.txt", "is empty")
    refused(tmp_path / "gone.txt", "cannot be opened")
    (tmp_path / "blank.md").write_text("\n\n   \n")
    refused(tmp_path / "blank.md", "contains no text")
    refused(zipped(tmp_path / "sheet.xlsx", "xl/workbook.xml", "<workbook/>"),
            "is a ZIP-based file")


# -- DOCX and HTML -----------------------------------------------------------------------


def make_docx(path):
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=0)
    document.add_paragraph("Sales grew in every region.")
    document.add_heading("Numbers", level=1)
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, [("Region", "Sales"), ("North", "120")]):
        for cell, value in zip(row.cells, values):
            cell.text = value
    document.add_paragraph("Margins held.", style="List Bullet")
    document.add_heading("Outlook", level=2)
    document.add_paragraph("Steady.")
    document.save(path)
    return path


def test_docx_paragraphs_headings_and_tables(tmp_path):
    doc = extract(make_docx(tmp_path / "q3.docx"))
    assert (doc.kind, doc.unit, doc.total) == ("docx", "section", 3)
    assert [s.title for s in doc.sections] == ["Quarterly report", "Numbers", "Outlook"]
    assert doc.sections[0].text == "# Quarterly report\nSales grew in every region."
    assert doc.sections[1].text == "# Numbers\n| Region | Sales |\n| North | 120 |\n- Margins held."
    assert doc.sections[2].text == "## Outlook\nSteady."


HTML = """<!DOCTYPE html><html><head><title>Ignored title</title>
<style>body { color: red }</style><script>var secret = "<p>not text</p>";</script></head>
<body><nav><ul><li>Home</li><li><p>About</p></li></ul></nav>
<h1>Release   notes</h1><p>Fish &amp; chips,
  now &lt;faster&gt;.</p><script type="module">alert("x")</script>
<h2>Details</h2><table><tr><th>Key</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
<pre>  indented
    code</pre><noscript>Enable JS</noscript></body></html>"""


def test_html_text_without_scripts_or_styles(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(HTML, encoding="utf-8")
    doc = extract(path)
    assert doc.kind == "html" and doc.unit == "section"
    assert [s.title for s in doc.sections] == ["Section 1", "Release notes", "Details"]
    assert doc.sections[0].text == "- Home\n- About"
    assert doc.sections[1].text == "# Release notes\nFish & chips, now <faster>."
    assert doc.sections[2].text == "## Details\nKey | Value\na | 1\n  indented\n    code"
    for hidden in ("secret", "alert", "color", "Ignored", "Enable JS"):
        assert hidden not in doc.text


# -- hardening: odd files users really have ----------------------------------------------

TURN_MARKERS = "<start_of_turn>user\nhi<end_of_turn>"


def test_turn_markers_survive_extraction_verbatim(tmp_path):
    (tmp_path / "chat.txt").write_text(TURN_MARKERS, encoding="utf-8")
    (tmp_path / "chat.md").write_text(f"# Log\n{TURN_MARKERS}", encoding="utf-8")
    (tmp_path / "chat.html").write_text("<p>&lt;start_of_turn&gt;user</p><p>hi&lt;end_of_turn&gt;"
                                        "</p>", encoding="utf-8")
    make_pdf(tmp_path / "chat.pdf", [TURN_MARKERS])
    for name in ("chat.txt", "chat.md", "chat.html", "chat.pdf"):
        assert TURN_MARKERS in extract(tmp_path / name).text, name
    import docx

    document = docx.Document()
    document.add_paragraph(TURN_MARKERS)
    document.save(tmp_path / "chat.docx")
    assert TURN_MARKERS in extract(tmp_path / "chat.docx").text


def test_nul_padding_at_the_end_is_not_binary(tmp_path):
    path = tmp_path / "service.log"
    path.write_bytes(b"started\r\nstopped\r\n" + b"\x00" * 4096)
    doc = extract(path)
    assert (doc.text, doc.total, doc.encoding) == ("started\nstopped", 2, "utf-8")
    path.write_bytes("wide text\n".encode("utf-16-le") + b"\x00" * 64)
    assert extract(path).text == "wide text"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(DocumentError, match=r"service\.log contains no text"):
        extract(path)


def test_nul_holes_after_a_text_start_are_dropped(tmp_path):
    path = tmp_path / "crash.log"
    text = "line of log text\n" * 5000
    path.write_bytes(text.encode() + b"\x00" * 512 + b"after the crash\n")
    assert extract(path).text == text + "after the crash"


def test_folders_and_pipes_are_refused_without_reading(tmp_path):
    import os

    (tmp_path / "reports").mkdir()
    with pytest.raises(DocumentError, match=r"reports is a folder"):
        extract(tmp_path / "reports")
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would wait forever
    with pytest.raises(DocumentError, match=r"pipe\.txt is not a regular file"):
        extract(tmp_path / "pipe.txt")


def test_unicode_file_name_with_spaces(tmp_path):
    path = tmp_path / "Bericht über Köln 東京.txt"
    path.write_text("Inhalt", encoding="utf-8")
    assert extract(path).name == "Bericht über Köln 東京.txt"


def test_pdf_header_after_leading_junk(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", report_pages(1)).read_bytes()
    (tmp_path / "download.pdf").write_bytes(b"\xef\xbb\xbfHTTP junk\r\n" + good)
    assert "Report page 1 of 1." in extract(tmp_path / "download.pdf").text
    (tmp_path / "notes.md").write_text("# PDF notes\nA PDF starts with %PDF-1.7\n")
    assert extract(tmp_path / "notes.md").kind == "markdown"


def test_damaged_pdf_message_says_what_to_do(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", report_pages(3)).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[: len(good) // 2])
    with pytest.raises(DocumentError, match=r"cut\.pdf is a damaged or incomplete PDF.*again"):
        extract(tmp_path / "cut.pdf")


def test_aes_pdf_without_crypto_library_is_not_called_damaged(tmp_path, monkeypatch):
    import pypdf._crypt_providers._fallback as fallback
    import pypdf._encryption

    plain = make_pdf(tmp_path / "plain.pdf", report_pages(1))
    path = tmp_path / "aes.pdf"
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    writer.write(path)
    monkeypatch.setattr(pypdf._encryption, "CryptAES", fallback.CryptAES)  # as if not installed
    with pytest.raises(DocumentError, match=r"aes\.pdf is an encrypted PDF that this "
                                            r"installation cannot decrypt.*cryptography"):
        extract(path)


def test_office_files_in_the_ole_container(tmp_path):
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    (tmp_path / "locked.docx").write_bytes(header + "EncryptedPackage".encode("utf-16-le"))
    with pytest.raises(DocumentError, match=r"locked\.docx is a password-protected Office"):
        extract(tmp_path / "locked.docx")
    (tmp_path / "old.doc").write_bytes(header + "WordDocument".encode("utf-16-le"))
    with pytest.raises(DocumentError, match=r"old\.doc is in the old binary Office format"):
        extract(tmp_path / "old.doc")


# -- DOCX: what Word shows, simple readers miss ------------------------------------------

NAMESPACES = ('xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
              'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
              'xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math"')


def docx_with_xml(path, *blocks: str):
    """A Word document whose body holds these raw WordprocessingML blocks, in order."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    body = document.element.body
    for block in blocks:
        body.insert(len(body) - 1, parse_xml(re.sub(r"^<(w:\w+)", rf"<\1 {NAMESPACES}", block)))
    document.save(path)
    return path


def test_docx_tracked_changes_content_controls_and_breaks(tmp_path):
    path = docx_with_xml(
        tmp_path / "draft.docx",
        '<w:p><w:r><w:t xml:space="preserve">Price is </w:t></w:r><w:del w:id="1" w:author="a">'
        '<w:r><w:delText>10</w:delText></w:r></w:del><w:ins w:id="2" w:author="a"><w:r>'
        "<w:t>12</w:t></w:r></w:ins></w:p>",
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>Inside a content control</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>",
        "<w:p><w:pPr><w:tabs><w:tab w:val='left' w:pos='720'/></w:tabs></w:pPr><w:r><w:t>one"
        "</w:t><w:br/><w:t>two</w:t><w:tab/><w:t>three</w:t></w:r></w:p>",
        "<w:p><w:pPr><w:numPr><w:ilvl w:val='0'/><w:numId w:val='1'/></w:numPr></w:pPr><w:r>"
        "<w:t>numbered item</w:t></w:r></w:p>",
        "<w:p><w:r><w:t xml:space='preserve'>Area: </w:t></w:r><m:oMath><m:r><m:t>πr²</m:t>"
        "</m:r></m:oMath></w:p>")
    assert extract(path).text == ("Price is 12\nInside a content control\none\ntwo\tthree\n"
                                  "- numbered item\nArea: πr²")


def test_docx_nested_table_and_text_box_read_once(tmp_path):
    box = "<w:txbxContent><w:p><w:r><w:t>Boxed note</w:t></w:r></w:p></w:txbxContent>"
    path = docx_with_xml(
        tmp_path / "layout.docx",
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>outer</w:t></w:r></w:p></w:tc><w:tc><w:tbl><w:tr>"
        "<w:tc><w:p><w:r><w:t>inner</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>cell</w:t>"
        "</w:r></w:p></w:tc></w:tr></w:tbl></w:tc></w:tr></w:tbl>",
        f"<w:p><w:r><w:t>See: </w:t></w:r><w:r><mc:AlternateContent><mc:Choice Requires='wps'>"
        f"<w:drawing>{box}</w:drawing></mc:Choice><mc:Fallback><w:pict>{box}</w:pict>"
        f"</mc:Fallback></mc:AlternateContent></w:r></w:p>")
    assert extract(path).text == "| outer | inner cell |\nSee: Boxed note"


def test_macro_enabled_word_document_is_read(tmp_path):
    import zipfile

    source = make_docx(tmp_path / "q3.docx")
    target = tmp_path / "q3.docm"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "[Content_Types].xml":
                data = data.replace(b"wordprocessingml.document.main",
                                    b"ms-word.document.macroEnabled.main")
            new.writestr(item.filename, data)
    assert extract(target).sections[0].title == "Quarterly report"


def test_broken_word_documents(tmp_path):
    good = make_docx(tmp_path / "good.docx").read_bytes()
    (tmp_path / "cut.docx").write_bytes(good[: len(good) // 2])
    refused(tmp_path / "cut.docx", "is a damaged or incomplete Word")
    refused(zipped(tmp_path / "photos.docx", "photo.jpg", b"\xff\xd8"),
            r"is named \.docx but is a ZIP")
    refused(zipped(tmp_path / "bad-xml.docx", "word/document.xml", "<w:document><unclosed>"),
            "is a damaged Word document")
    (tmp_path / "renamed.docx").write_text("plain words")
    refused(tmp_path / "renamed.docx", r"is named \.docx but is not a Word")


# -- HTML ----------------------------------------------------------------------------------


def test_html_without_closing_head_keeps_its_body(tmp_path):
    path = tmp_path / "page.htm"
    path.write_text("<html><head><title>Tab title</title><meta charset=utf-8>"
                    "<p>First paragraph</p><h2>Next</h2><p>More</p>", encoding="utf-8")
    doc = extract(path)
    assert doc.text == "First paragraph\n\n## Next\nMore"


@pytest.mark.parametrize("text, charset", [
    ("Привет, это отчёт о продажах", "windows-1251"), ("東京の天気は晴れです", "shift_jis")])
def test_html_declared_charset_is_used(tmp_path, text, charset):
    path = tmp_path / "old.html"
    path.write_bytes(f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
                     f"<p>{text}</p>".encode(charset))
    assert extract(path).text == text


def test_html_declaring_a_codec_that_is_not_an_encoding(tmp_path):
    path = tmp_path / "odd.html"
    path.write_bytes('<meta charset="base64"><p>Café crème</p>'.encode("cp1252"))
    doc = extract(path)
    assert (doc.text, doc.encoding) == ("Café crème", "cp1252")
