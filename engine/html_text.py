"""HTML as lines of text with its headings: what engine.documents keeps of a web page.

Scripts, styles and other invisible parts are dropped; block elements end lines, list items get
a bullet, table cells a " | ", and <pre> keeps its line breaks. Lines and headings go to a
`builder` (engine.documents.SectionBuilder: `heading(title, level)`, `add_lines(lines)`).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SPACES = re.compile(r"\s+")
HEADINGS = {f"h{level}" for level in range(1, 7)}


def feed_html(text: str, builder) -> None:
    parser = HtmlText(builder)
    parser.feed(text)
    parser.close()
    parser._break()


class HtmlText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head", "title", "svg", "iframe", "object"}
    IN_HEAD = {"title", "meta", "link", "style", "script", "base", "noscript", "template"}
    BLOCKS = set("p div br li tr section article header footer table ul ol blockquote pre hr "
                 "dd dt dl nav main aside figure figcaption form".split())

    def __init__(self, builder):
        super().__init__(convert_charrefs=True)
        self.builder, self.skipping, self.pre = builder, [], 0
        self.line = [""]  # line[0] is the line's bullet, the rest its text
        self.heading = None  # (level, pieces) while inside <h1>..<h6>

    def handle_starttag(self, tag, attrs):
        if self.skipping == ["head"] and tag not in self.IN_HEAD:
            self.skipping.pop()  # </head> is optional: the body's first tag ends the head
        if tag in self.SKIP:
            self.skipping.append(tag)
        elif tag in HEADINGS:
            self.heading = (int(tag[1]), [])
        elif tag in self.BLOCKS:
            self._break("- " if tag == "li" else "")
        elif tag in ("td", "th") and len(self.line) > 1:
            self.line.append(" | ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag):
        if self.skipping and tag == self.skipping[-1]:
            self.skipping.pop()
        elif tag in HEADINGS and self.heading:
            level, pieces = self.heading
            self.heading = None
            self._break()
            self.builder.heading(" ".join("".join(pieces).split()), level)
        elif tag in self.BLOCKS:
            self._break()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skipping:
            return
        if self.heading:
            self.heading[1].append(data)
        elif self.pre:
            lines = data.split("\n")
            self.line.append(lines[0])
            for line in lines[1:]:
                self._break()
                self.line.append(line)
        else:
            self.line.append(SPACES.sub(" ", data))

    def _break(self, prefix: str = "") -> None:
        """End the current line; `prefix` (a list bullet) starts the next one."""
        text = "".join(self.line[1:])
        if text.strip():
            self.builder.add_lines([self.line[0] + (text if self.pre else text.strip())])
        self.line = [prefix or ("" if text.strip() else self.line[0])]  # <li><p>: keep the bullet
