"""The app's chat turns as Chat Completions messages, and the server address (for engine.remote).

Images travel as data URLs inside the message, documents as text blocks marked where they begin
and end, so a server sees the same chat the local engine would.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SENT_AS_IS = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
EXIF_ORIENTATION = 0x0112
ROLES = {"user": "user", "model": "assistant", "assistant": "assistant", "system": "system"}
# Servers render the chat template and then tokenise it with special tokens on, so a control
# string inside a message would become the control token itself.
CONTROL = re.compile(r"<(?=(?:start_of_turn|end_of_turn|start_of_image|end_of_image|"
                     r"image_soft_token|bos|eos|pad|unk|mask|unused\d+)>)")
WORD_JOINER = "\u2060"


def inert(text: str) -> str:
    """Text that no server reads as a control token: "<start_of_turn>" typed by a person, or
    found in a document, gets an invisible word joiner after its "<" and stays text. (The
    local engine needs no such thing: it encodes text and control tokens apart.)"""
    return CONTROL.sub("<" + WORD_JOINER, text)


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "http" or "https"
    host: str
    port: int
    root: str  # path of the server itself ("" or a proxy's prefix): /props, /api/show live here
    api: str  # path of the OpenAI-compatible API, usually "/v1"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}{self.api}"


def parse_base_url(url: str) -> Endpoint:
    """Accept what people paste: "localhost:8000", "http://gpu-box:8000/v1", even the full
    ".../v1/chat/completions"."""
    text = (url or "").strip()
    if not text:
        raise ValueError("Enter the server's address, e.g. http://127.0.0.1:8000/v1")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"The server address must start with http:// or https://, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"The server address {url!r} names no host")
    if parts.username or parts.password:
        raise ValueError("Put the API key in its own field, not in the server address")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"The port in {url!r} is not a number from 1 to 65535") from None
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/completions", "/models"):
        path = path.removesuffix(tail)
    api = path or "/v1"
    return Endpoint(parts.scheme, parts.hostname, port, api.removesuffix("/v1"), api)


def build_messages(turns, system_prompt: str = "", document_text=None) -> list[dict]:
    """Messages for /chat/completions from the app's turns: the worker's request dicts
    ({"role", "text", "attachments": [{"kind", "path", "name"}]}) or objects with those
    attributes (app.conversation.Message). `document_text(attachment)` gives a document's
    block exactly as the local engine's prompt holds it; without it a document must carry its
    `extracted_text`. Answers with no text yet are left out."""
    messages = [{"role": "system", "content": inert(system_prompt)}] if system_prompt.strip() \
        else []
    for turn in turns:
        role = ROLES.get(_field(turn, "role"))
        if role is None:
            raise ValueError(f"A chat turn has the unknown role {_field(turn, 'role')!r}")
        text, attachments = _field(turn, "text") or "", list(_field(turn, "attachments") or [])
        if role == "assistant" and not text:
            continue
        content = user_content(text, attachments, document_text) if attachments else inert(text)
        messages.append({"role": role, "content": content})
    return messages


def user_content(text: str, attachments, document_text=None) -> str | list[dict]:
    """Pictures, then documents, then the words typed, as the local engine orders them; a
    list of parts only when there are pictures."""
    render = document_text or _plain_document
    blocks = [render(a) for a in attachments if _field(a, "kind") == "document"]
    text = inert("\n\n".join([*blocks, text] if text else blocks))
    images = [image_part(_field(a, "path")) for a in attachments if _field(a, "kind") == "image"]
    if not images:
        return text
    return [*images, {"type": "text", "text": text}] if text else images


def document_block(name: str, text: str) -> str:
    return f'===== BEGIN FILE "{name}" =====\n{text}\n===== END FILE "{name}" ====='


def image_part(path) -> dict:
    """An image content part with the picture as a data URL (PNG and JPEG sent as they are,
    other formats, and photos that EXIF says to turn, converted to upright PNG)."""
    data = Path(path).read_bytes()
    mime = next((kind for magic, kind in SENT_AS_IS.items() if data.startswith(magic)), None)
    if mime is None or _turned(data):
        data, mime = _as_png(data, Path(path).name), "image/png"
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _turned(data: bytes) -> bool:
    """A photo whose EXIF orientation says to turn it, which servers' decoders ignore."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.getexif().get(EXIF_ORIENTATION, 1) != 1
    except (OSError, ValueError):
        return False  # sent as it is; the server says what it makes of it


def _as_png(data: bytes, name: str) -> bytes:
    """The picture as the engine would see it (size limits, formats, turned upright), as PNG."""
    from engine.errors import ImageError
    from engine.images import open_image

    try:
        image = open_image(data, name)
    except ImageError as exc:
        raise ValueError(f"{name} cannot be sent as an image: {exc}") from exc
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _plain_document(attachment) -> str:
    text, name = _field(attachment, "extracted_text"), _field(attachment, "name")
    if text is None:
        raise ValueError(f"The text of {name} has not been read yet")
    return document_block(name, text)


def _field(item, name: str):
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)
