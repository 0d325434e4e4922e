"""From the window's plain chat data to the engine's prompt: turns, pictures and documents.

A request (what the window sends, all plain data):
    {"turns": [{"role": "user"|"model", "text": str,
                "attachments": [{"kind": "image"|"document", "path": str, "name": str}]}],
     "system": str, "pan_and_scan": bool, "continue_last": bool,   # continue the last answer
     "max_new_tokens": int, "sampling": dict | None, "reserve": int}
`Counter` answers "how many tokens" questions on a helper thread with the same rules, so the
context meter counts exactly what the model will be sent.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from engine.chat import ImagePart, Turn, image_token_cost, render_prompt, turn_ids
from engine.context import DOCUMENT_NOTE, document_block
from engine.documents import extract
from engine.errors import DocumentError, ImageError
from engine.images import image_cost, open_image, preprocess

SUMMARY_TASK = ("Summarise the conversation below in one short paragraph. Keep the names, "
                "numbers, decisions and open questions that matter.")


@dataclass(frozen=True)
class ModelView:
    """What the counting thread may use of the loaded model: read-only parts only."""

    tokenizer: object
    sees_images: bool
    context_length: int
    base_model: bool


class _Cache:
    """A small thread-safe LRU: documents and pictures are read once, then reused."""

    def __init__(self, limit: int) -> None:
        self.limit, self._items, self._lock = limit, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return value


_documents = _Cache(16)  # file version -> (prompt text, Document)
_pixels = _Cache(8)  # (file version, pan_and_scan) -> (pixel_values, crops)
_crops = _Cache(256)  # (file version, pan_and_scan) -> crops (counting needs no pixels)


def _version(path: str) -> tuple:
    """The file as it is now: a file saved again after it was read is read again."""
    try:
        stat = os.stat(path)
    except OSError:
        return path, None  # reading it will say what is wrong
    return path, stat.st_mtime_ns, stat.st_size


def document_text(path: str):
    def make():
        doc = extract(path)
        return f"{DOCUMENT_NOTE}\n\n{document_block(doc)}", doc

    return _documents.get(_version(path), make)


def image_crops(path: str, pan_and_scan: bool) -> int:
    return _crops.get((_version(path), pan_and_scan),
                      lambda: image_cost(open_image(path), pan_and_scan))


def image_pixels(path: str, pan_and_scan: bool):
    return _pixels.get((_version(path), pan_and_scan),
                       lambda: preprocess(open_image(path), pan_and_scan))


def engine_turn(turn: dict, sees_images: bool, pan_and_scan: bool, pixels: list | None) -> Turn:
    """One chat turn as engine parts: pictures, then documents, then the words typed.

    A model that cannot see pictures is told that one was there instead of getting it.
    `pixels`, when given, collects each picture's pixel values in prompt order."""
    parts: list = []
    for a in turn.get("attachments", ()):
        if a["kind"] == "image" and sees_images:
            if pixels is not None:
                values, crops = image_pixels(a["path"], pan_and_scan)
                pixels.append(values)
            else:
                crops = image_crops(a["path"], pan_and_scan)
            parts.append(ImagePart(crops))
        elif a["kind"] == "image":
            parts.append(f"[A picture, {a['name']}, is attached; this model cannot see it.]")
        else:
            parts.append(document_text(a["path"])[0])
    if turn.get("text"):
        parts.append(turn["text"])
    return Turn(turn["role"], parts)


def alternating(turns: list[dict]) -> list[dict]:
    """Turns as Gemma needs them: user first, then alternating. Answers without text (failed
    before a word) are left out and neighbouring turns of one role are joined, which happens
    after a message was deleted."""
    result: list[dict] = []
    for t in turns:
        if t["role"] == "model" and not t.get("text"):
            continue
        if not result and t["role"] == "model":
            continue
        if result and result[-1]["role"] == t["role"]:
            last = result[-1]
            text = "\n\n".join(x for x in (last.get("text"), t.get("text")) if x)
            result[-1] = {**last, "text": text, "attachments": [*last.get("attachments", ()),
                                                                *t.get("attachments", ())]}
        else:
            result.append(t)
    return result


def build_prompt(model, request: dict):
    """(token ids, pixel_values or None) for a request, ending where the answer begins."""
    import torch

    pixels: list = []
    turns = request["turns"]
    sees, pan = model.config.sees_images, request.get("pan_and_scan", False)
    continuing = request.get("continue_last") and turns and turns[-1]["role"] == "model"
    history = alternating(turns[:-1] if continuing else turns)
    engine_turns = [engine_turn(t, sees, pan, pixels) for t in history]
    ids = render_prompt(model.tokenizer, engine_turns, system=request.get("system") or None)
    if continuing:
        ids = ids + model.tokenizer.encode(turns[-1]["text"])
    return ids, (torch.cat(pixels) if pixels else None)


def summary_prompt(model, request: dict, budget: int) -> tuple[list[int], bool]:
    """(ids, plain) asking for a summary of the chat; the oldest lines go first when the whole
    transcript does not fit in `budget` tokens, and the prompt says so."""
    from engine.summarize import prompt_style

    lines = [f"{'User' if t['role'] == 'user' else 'Assistant'}: {t['text']}"
             for t in request["turns"] if t.get("text")]
    plain = prompt_style(model) == "plain"
    tokenizer = model.tokenizer
    while True:
        transcript = "\n\n".join(lines)
        if plain:
            ids = [tokenizer.bos_id, *tokenizer.encode(f"{transcript}\n\nIn summary:")]
        else:
            ids = render_prompt(tokenizer, [Turn("user", [f"{SUMMARY_TASK}\n\n{transcript}"])])
        if len(ids) <= budget or len(lines) <= 1:
            return ids[-budget:] if len(ids) > budget else ids, plain
        lines = ["(The start of the conversation is left out.)"] + lines[2:]


class Counter:
    """Token counts for the context meter and attachment chips (runs on a helper thread).
    `view` is the loaded model's ModelView, or None while no model is loaded."""

    def __init__(self) -> None:
        self._turns = _Cache(4096)

    def measure(self, view: ModelView | None, path: str, kind: str, pan_and_scan: bool) -> dict:
        """Check one attachment: {"token_cost", "page_count", "extracted_text", "note"} or
        {"error"}; {"waiting": True} while no model (tokenizer) is loaded."""
        try:
            if kind == "image":
                crops = image_crops(path, pan_and_scan)
                if view is None:
                    return {"waiting": True}
                note = "" if view.sees_images else "this model cannot see pictures"
                return {"token_cost": image_token_cost(view.tokenizer, crops), "note": note}
            text, doc = document_text(path)
            if view is None:
                return {"waiting": True}
            pages = doc.total if doc.unit == "page" else None
            return {"token_cost": len(view.tokenizer.encode(text)), "page_count": pages,
                    "extracted_text": doc.text}
        except (ImageError, DocumentError) as exc:
            return {"error": str(exc)}

    def first_part(self, view: ModelView, path: str, budget: int) -> dict:
        """As much of the start of a document as `budget` tokens hold, and what it covers:
        {"name", "text", "coverage"}; the name says the coverage, so the chat shows it too."""
        from engine.context import SAFETY, coverage, plan_chunks

        if view is None:
            return {"error": "No model is loaded yet, so the document cannot be measured."}
        try:
            _block, doc = document_text(path)
            chunk = plan_chunks(doc, view.tokenizer, budget - SAFETY)[0]
        except (DocumentError, ValueError) as exc:  # unreadable, or not even a line fits
            return {"error": str(exc)}
        read = coverage(doc, [chunk])
        return {"name": f"{doc.name} ({read}).txt", "text": chunk.text, "coverage": read}

    def count(self, view: ModelView | None, request: dict) -> dict:
        """{"history", "per_turn", "draft", "context_length"} for request["turns"] plus the
        draft (request["draft"]: a user turn of text only; its files are counted by measure)."""
        if view is None:
            return {"id": request.get("id"), "context_length": 0}
        pan, system = request.get("pan_and_scan", False), request.get("system") or ""
        per_turn = [self._turn_tokens(view, t, pan) for t in request["turns"]]
        base = len(render_prompt(view.tokenizer, []))  # BOS and the answer's opening
        if system:  # folded into the first user turn
            base += len(view.tokenizer.encode(system + "\n\n"))
        draft = request.get("draft") or {"role": "user", "text": ""}
        return {"id": request.get("id"), "context_length": view.context_length,
                "history": base + sum(per_turn), "per_turn": per_turn,
                "draft": self._turn_tokens(view, {**draft, "attachments": []}, pan)}

    def _turn_tokens(self, view: ModelView, turn: dict, pan: bool) -> int:
        """Tokens of one turn (0 for an answer without text, which the prompt leaves out)."""
        if turn["role"] == "model" and not turn.get("text"):
            return 0
        key = (id(view), turn["role"], turn.get("text", ""), pan,
               tuple((a["kind"], a["path"]) for a in turn.get("attachments", ())))

        def make():
            try:
                one = engine_turn(turn, view.sees_images, pan, None)
            except (ImageError, DocumentError):
                one = Turn(turn["role"], [turn.get("text", "")])
            return len(turn_ids(view.tokenizer, one))

        return self._turns.get(key, make)
