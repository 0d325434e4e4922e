"""Export chats to Markdown, JSON and HTML; import JSON. Qt-free.

- JSON is complete and re-importable: every field, and each attachment's bytes embedded as
  base64 (only here; the database itself never holds file bytes), checked by sha256 on import.
- Markdown is for reading and editing: attachments are copied into a "<name>_files" folder beside
  it and linked (images shown).
- HTML is one self-contained file: CSS inline, images embedded, all text escaped, and the
  model's Markdown rendered without raw HTML or remote images.
Exporters take a Conversation with its messages (Store.get_conversation).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html
import json
import re
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from markdown_it import MarkdownIt

from app.conversation import Attachment, Conversation, Message, new_id

FORMAT = "gemma-desk-chat"
FORMAT_VERSION = 1
FORMATS = ("json", "markdown", "html")
SPEAKERS = {"user": "You", "model": "Gemma"}
_ATTACHMENT_DETAILS = ("token_cost", "extracted_text", "page_count", "coverage")
_NOTES = {"interrupted": "interrupted: the app closed while it was being written",
          "stopped": "stopped", "error": "error"}


# JSON

def chat_to_dict(chat: Conversation) -> dict:
    """The whole chat as plain JSON data, attachment bytes included."""
    data = asdict(replace(chat, messages=[]))
    data["messages"] = [_message_to_dict(m) for m in chat.messages]
    return {"format": FORMAT, "version": FORMAT_VERSION, "exported_at": time.time(),
            "conversation": data}


def _message_to_dict(message: Message) -> dict:
    data = asdict(replace(message, attachments=[]))
    del data["conversation_id"]  # implied by where it sits
    data["attachments"] = [_attachment_to_dict(a) for a in message.attachments]
    return data


def _attachment_to_dict(attachment: Attachment) -> dict:
    data = asdict(attachment)
    del data["path"]  # a path on this machine means nothing elsewhere
    data["data_base64"] = base64.b64encode(attachment.path.read_bytes()).decode("ascii")
    return data


def export_json(chat: Conversation, path: Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(chat_to_dict(chat), ensure_ascii=False, indent=1), "utf-8")
    return path


def import_json(store, path: Path) -> Conversation:
    """Add an exported chat to `store` and return it as stored. It keeps its ids unless they are
    taken (importing a chat twice gives a copy with new ids). ValueError for anything that is not
    an intact Gemma Desk export."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a Gemma Desk chat export (not JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Gemma Desk chat export")
    if data.get("version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was exported by a newer Gemma Desk (format version "
                         f"{data['version']}); update Gemma Desk to import it")
    try:
        chat = _chat_from_dict(store, data["conversation"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is an incomplete chat export (missing or wrong {exc})") from exc
    if store.ids_in_use(chat):
        chat = _with_new_ids(chat)
    store.insert_conversation(chat)
    return store.get_conversation(chat.id)


def _chat_from_dict(store, data: dict) -> Conversation:
    chat = Conversation(**{k: v for k, v in data.items() if k != "messages"})
    for item in data["messages"]:
        files = [_attachment_from_dict(store, a) for a in item["attachments"]]
        fields = {k: v for k, v in item.items() if k != "attachments"}
        message = Message(conversation_id=chat.id, attachments=files, **fields)
        if message.status == "streaming":  # it can no longer finish
            message.status = "interrupted"
        chat.messages.append(message)
    return chat


def _attachment_from_dict(store, data: dict) -> Attachment:
    name = data["name"]
    try:
        content = base64.b64decode(data["data_base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"attachment {name!r} is damaged ({exc})") from exc
    if hashlib.sha256(content).hexdigest() != data["sha256"]:
        raise ValueError(f"attachment {name!r} does not match its sha256: damaged")
    details = {key: data[key] for key in _ATTACHMENT_DETAILS if key in data}
    return store.add_attachment_file(content, name, data["kind"], data["mime"], **details)


def _with_new_ids(chat: Conversation) -> Conversation:
    chat_id = new_id()
    messages = [replace(m, id=new_id(), conversation_id=chat_id) for m in chat.messages]
    return replace(chat, id=chat_id, messages=messages)


# Markdown

def export_markdown(chat: Conversation, folder: Path) -> Path:
    """Write <folder>/<title>.md and copy its attachments into <folder>/<title>_files/."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_path(folder / f"{safe_name(chat.display_title)}.md")
    files_dir = target.with_name(f"{target.stem}_files")
    lines = [f"# {chat.display_title}", "", f"*Exported from Gemma Desk, {_date(chat.created_at)}"
             f" to {_date(chat.updated_at)}, {len(chat.messages)} messages*", ""]
    if chat.system_prompt:
        lines += ["> **System prompt:** " + chat.system_prompt.replace("\n", "\n> "), ""]
    for message in chat.messages:
        lines += [f"## {SPEAKERS[message.role]} · {_date(message.created_at)}", ""]
        lines += [message.text, ""] if message.text else []
        for attachment in message.attachments:
            lines += [_markdown_link(attachment, files_dir), ""]
        if message.status in _NOTES:
            lines += [f"*({_note(message)})*", ""]
    target.write_text("\n".join(lines), "utf-8")
    return target


def _markdown_link(attachment: Attachment, files_dir: Path) -> str:
    files_dir.mkdir(exist_ok=True)
    copy = _free_path(files_dir / safe_name(attachment.name, keep_suffix=True))
    shutil.copyfile(attachment.path, copy)
    link = f"[{attachment.name}](<{files_dir.name}/{copy.name}>)"
    return "!" + link if attachment.kind == "image" else link


# HTML

_CSS = """body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;
color:#1d1d1f;background:#fff}.msg{margin:1.2rem 0;padding:.6rem 1rem;border-radius:.6rem}
.user{background:#eef3fb}.model{background:#f6f6f6}.who{font-weight:600;font-size:.85rem;
color:#555}.plain{white-space:pre-wrap}img{max-width:100%}pre{overflow-x:auto;background:#eee;
padding:.5rem}.note{font-style:italic;color:#a33}@media(prefers-color-scheme:dark){body{
background:#1e1e1e;color:#eee}.user{background:#24344d}.model{background:#2b2b2b}pre{
background:#333}.who{color:#aaa}}"""


def export_html(chat: Conversation, path: Path) -> Path:
    """One self-contained, escaped HTML file."""
    title = html.escape(chat.display_title)
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>",
             f"<style>{_CSS}</style></head><body><h1>{title}</h1>"]
    if chat.system_prompt:
        prompt = html.escape(chat.system_prompt)
        parts.append(f"<p class='plain'><b>System prompt:</b> {prompt}</p>")
    parts += [_html_message(m) for m in chat.messages]
    parts.append("</body></html>\n")
    path = Path(path)
    path.write_text("\n".join(parts), "utf-8")
    return path


def _html_message(message: Message) -> str:
    who = f"{SPEAKERS[message.role]} · {_date(message.created_at)}"
    if message.role == "model":
        body = _markdown().render(message.text)
    else:
        body = f"<div class='plain'>{html.escape(message.text)}</div>"
    files = "".join(_html_attachment(a) for a in message.attachments)
    note = f"<p class='note'>({html.escape(_note(message))})</p>" if message.status in _NOTES \
        else ""
    return (f"<div class='msg {message.role}'><div class='who'>{html.escape(who)}</div>"
            f"{body}{files}{note}</div>")


def _html_attachment(attachment: Attachment) -> str:
    name = html.escape(attachment.name)
    if attachment.kind == "image" and attachment.mime.startswith("image/"):
        data = base64.b64encode(attachment.path.read_bytes()).decode("ascii")
        return f"<p><img alt='{name}' src='data:{html.escape(attachment.mime)};base64,{data}'></p>"
    text = html.escape(attachment.extracted_text or "")
    return (f"<details><summary>📄 {name} ({attachment.size:,} bytes)</summary>"
            f"<pre>{text}</pre></details>")


@functools.cache
def _markdown() -> MarkdownIt:
    # no raw HTML from the model, and no images that would load from the internet when opened
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]) \
        .disable("image")


# all chats

def export_all(store, folder: Path, fmt: str = "json") -> list[Path]:
    """Every chat into `folder`, one file each; returns the files written."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for summary in store.list_conversations():
        chat = store.get_conversation(summary.id)
        if fmt == "markdown":
            written.append(export_markdown(chat, folder))
        else:
            name = _free_path(folder / f"{safe_name(chat.display_title)}.{fmt}")
            written.append((export_json if fmt == "json" else export_html)(chat, name))
    return written


# helpers

def safe_name(name: str, keep_suffix: bool = False, limit: int = 80) -> str:
    """A file name that works on every system, from any title."""
    path = Path(name)
    stem, suffix = (path.stem, path.suffix) if keep_suffix else (name, "")
    stem = " ".join(re.sub(r'[\x00-\x1f<>:"/\\|?*]+', " ", stem).split())
    stem = stem.strip(" .")[:limit].strip(" .")
    return (stem or "chat") + re.sub(r"[^\w.]", "", suffix)


def _free_path(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def _date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _note(message: Message) -> str:
    note = _NOTES[message.status]
    return f"{note}: {message.error}" if message.error else note
