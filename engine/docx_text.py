"""Word documents as lines of text with their headings: what engine.documents keeps of a .docx.

Read straight from the document's XML, so that text Word shows but simpler readers miss is kept:
paragraphs inside content controls, tracked insertions (deletions are left out), nested tables,
text boxes and equations. Lines and headings go to a `builder` (engine.documents.SectionBuilder),
the same one engine.html_text fills. Headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
TEXT = {W + "t", "{http://schemas.openxmlformats.org/officeDocument/2006/math}t"}  # and equations
WRAPPERS = {W + "sdt", W + "sdtContent", W + "customXml"}  # content controls and custom XML
# Paragraph settings (their tab stops are not tabs), deleted or moved-away text, and the
# fallback copy of every text box that newer Word versions also store in a modern form.
LEFT_OUT = {W + "pPr", W + "del", W + "moveFrom", FALLBACK}
CHARACTERS = {W + "tab": "\t", W + "br": "\n", W + "cr": "\n", W + "noBreakHyphen": "-"}


def feed_docx(document_xml: bytes, styles_xml: bytes | None, builder) -> None:
    body = ElementTree.fromstring(document_xml).find(W + "body")
    if body is None:
        raise ValueError("the document has no body")
    styles = style_names(styles_xml)
    for block in parts(body, W + "p", W + "tbl"):
        if block.tag == W + "tbl":
            builder.add_lines("| " + " | ".join(row) + " |" for row in table_rows(block))
        else:
            _paragraph(block, styles, builder)


def style_names(styles_xml: bytes | None) -> dict[str, str]:
    """Style id -> name; ids are translated ("berschrift1"), names of built-in styles are not."""
    if not styles_xml:
        return {}
    names = {}
    for style in ElementTree.fromstring(styles_xml).iter(W + "style"):
        name = style.find(W + "name")
        if name is not None:
            names[style.get(W + "styleId", "")] = name.get(W + "val", "")
    return names


def parts(element, *tags):
    """Children with these tags, also those wrapped in content controls or custom XML."""
    for child in element:
        if child.tag in tags:
            yield child
        elif child.tag in WRAPPERS:
            yield from parts(child, *tags)


def _paragraph(paragraph, styles: dict[str, str], builder) -> None:
    settings = paragraph.find(W + "pPr")
    style_id = settings.find(W + "pStyle") if settings is not None else None
    style = "" if style_id is None else style_id.get(W + "val", "")
    style = styles.get(style, style)
    text = inline_text(paragraph)
    level = heading_level(style)
    if level:
        builder.heading(" ".join(text.split()), level)
        return
    numbered = settings is not None and settings.find(W + "numPr") is not None
    bullet = "- " if numbered or style.lower().startswith("list") else ""
    builder.add_lines([bullet + text])


def heading_level(style: str) -> int:
    if style.lower() == "title":
        return 1
    match = re.fullmatch(r"heading ?([1-9])", style, re.IGNORECASE)
    return int(match.group(1)) if match else 0


def inline_text(element) -> str:
    pieces: list[str] = []
    _collect(element, pieces)
    return "".join(pieces)


def _collect(element, pieces: list[str]) -> None:
    for child in element:
        if child.tag in TEXT:
            pieces.append(child.text or "")
        elif child.tag in CHARACTERS:
            pieces.append(CHARACTERS[child.tag])
        elif child.tag not in LEFT_OUT:
            _collect(child, pieces)
            if child.tag == W + "p":  # a paragraph of a text box inside this one
                pieces.append("\n")


def table_rows(table) -> list[list[str]]:
    """Each row's cell texts; a cell's own tables are flattened into its text."""
    return [[_cell_text(cell) for cell in parts(row, W + "tc")] for row in parts(table, W + "tr")]


def _cell_text(cell) -> str:
    pieces = []
    for block in parts(cell, W + "p", W + "tbl"):
        if block.tag == W + "tbl":
            pieces.extend(" ".join(row) for row in table_rows(block))
        else:
            pieces.append(inline_text(block))
    return " ".join(" ".join(pieces).split())
