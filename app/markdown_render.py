"""Markdown to the HTML subset QTextDocument draws, with Pygments colours in code blocks.

Raw HTML in a message is shown as text, never interpreted: answers come from a model and may
contain anything. Images in Markdown become links (a document must not load local files because
a model wrote their path). Each code block gets a header with its language and a "Copy" link
whose href is `copy-code:N`; N indexes the `code_blocks` list returned beside the HTML.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

from app.theme import Colors

COPY_CODE = "copy-code:"
CODE_HEAD_PAD, CODE_BODY_PAD = 6, 10  # vertical padding of a code block's header and body
MONO = "'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace"


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...]


def render_markdown(text: str, colors: Colors) -> Rendered:
    return _render_markdown(text, colors)


def render_plain(text: str, colors: Colors) -> Rendered:
    """A user's message: their own words exactly, line breaks kept, nothing interpreted."""
    body = html.escape(text).replace("\n", "<br>")
    return Rendered(f"<div style='color:{colors.text}'>{body}</div>", ())


@lru_cache(maxsize=512)
def _render_markdown(text: str, colors: Colors) -> Rendered:
    code_blocks: list[str] = []
    parser = _parser(colors, code_blocks)
    body = parser.render(text)
    return Rendered(f"<div style='color:{colors.text}'>{body}</div>", tuple(code_blocks))


def _parser(colors: Colors, code_blocks: list[str]) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": False, "linkify": False})
    md.enable(["table", "strikethrough"])
    rules = md.add_render_rule

    def fence(self, tokens, idx, options, env):
        token = tokens[idx]
        language = token.info.strip().split(" ")[0] if token.info else ""
        return _code_block(token.content, language, colors, code_blocks)

    def code_inline(self, tokens, idx, options, env):
        content = html.escape(tokens[idx].content)
        return (f"<code style=\"font-family:{MONO}; background-color:{colors.code_bg};\">"
                f"{content}</code>")

    def image(self, tokens, idx, options, env):
        token = tokens[idx]
        source = html.escape(token.attrGet("src") or "")
        alt = html.escape(token.content or "image")
        return f"<a href=\"{source}\">[{alt}]</a>"

    def table_open(self, tokens, idx, options, env):
        return (f"<table cellspacing='0' cellpadding='5' border='1' "
                f"style='border-collapse:collapse; border-color:{colors.code_border}; "
                f"margin-top:4px; margin-bottom:8px;'>")

    rules("table_open", table_open)
    rules("fence", fence)
    rules("code_block", fence)
    rules("code_inline", code_inline)
    rules("image", image)
    return md


def _code_block(code: str, language: str, colors: Colors, code_blocks: list[str]) -> str:
    index = len(code_blocks)
    code_blocks.append(code.rstrip("\n"))
    colored = _highlight(code.rstrip("\n"), language, colors.pygments)
    label = html.escape(language or "code")
    # No borders or background here: Qt cannot round them; the chat delegate paints a rounded
    # card behind every borderless table (see message_layout.code_cards).
    return (
        f"<table width='100%' cellspacing='0' cellpadding='0' border='0' "
        f"style='margin-top:8px; margin-bottom:12px;'>"
        f"<tr><td width='95%' style='{pad(CODE_HEAD_PAD)} color:{colors.muted}; "
        f"font-size:small;'>{label}</td>"
        f"<td align='right' style='{pad(CODE_HEAD_PAD)} font-size:small;'>"
        f"<a href='{COPY_CODE}{index}' style='color:{colors.accent}; text-decoration:none;'>"
        f"Copy</a></td></tr>"
        f"<tr><td colspan='2' style='{pad(CODE_BODY_PAD)}'>"
        f"<pre style=\"font-family:{MONO}; margin:0;\">{colored}</pre></td></tr></table>"
    )


def pad(vertical: int, horizontal: int = 12) -> str:
    return (f"padding-top:{vertical}px; padding-bottom:{vertical}px; "
            f"padding-left:{horizontal}px; padding-right:{horizontal}px;")


def _highlight(code: str, language: str, style: str) -> str:
    lexer = _lexer(language, code)
    if lexer is None:
        return html.escape(code)
    formatter = HtmlFormatter(nowrap=True, noclasses=True, style=style)
    return highlight(code, lexer, formatter).rstrip("\n")


def _lexer(language: str, code: str):
    try:
        if language:
            return get_lexer_by_name(language, stripnl=False)
        lexer = guess_lexer(code)
        # guessing is only worth colours when it is confident; plain text otherwise
        return lexer if lexer.analyse_text(code) > 0.3 else None
    except ClassNotFound:
        return None
