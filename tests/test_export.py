"""Export to JSON / Markdown / HTML, and JSON import that reproduces the chat exactly."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict

import pytest

from app.export import export_all, export_html, export_json, export_markdown, import_json
from app.store import Store, StreamingSaver

PNG = bytes(range(256)) * 4  # any bytes: the files must come back byte-identical


@pytest.fixture
def store():
    with Store() as opened:
        yield opened


def make_chat(store, title="Trip <planning> & more"):
    chat = store.create_conversation(title, system_prompt="Answer briefly.")
    photo = store.add_attachment_file(PNG, "harbour photo.png", "image", token_cost=256)
    notes = store.add_attachment_file(b"Ferry at 9:40, pier 3.\n", "notes.txt",
                                      "document", extracted_text="Ferry at 9:40, pier 3.",
                                      token_cost=12, page_count=1, coverage=1.0)
    store.add_message(chat.id, "user", "What is in this picture? <script>alert(1)</script>",
                      [photo, notes])
    answer = "A **harbour** with <b>boats</b>.\n\n![x](http://t.example/p.png)"
    store.add_message(chat.id, "model", answer,
                      stats={"tokens_per_s": 17.25, "ttft_s": 0.412, "tokens": 9})
    store.add_message(chat.id, "user", "And the ferry?")
    saver = StreamingSaver.start(store, chat.id, interval_s=0)
    saver.append("The ferry leaves at")
    saver.stop({"tokens": 4})
    store.set_pinned(chat.id, True)
    store.set_folder(chat.id, "Travel")
    return store.get_conversation(chat.id)


def without_paths(chat) -> dict:
    data = asdict(chat)
    for message in data["messages"]:
        for attachment in message["attachments"]:
            del attachment["path"]
    return data


def test_json_export_then_import_reproduces_the_chat_exactly(store, tmp_path, monkeypatch):
    original = make_chat(store)
    exported = export_json(original, tmp_path / "chat.json")
    monkeypatch.setenv("GEMMA_DESK_DATA_DIR", str(tmp_path / "elsewhere"))
    with Store() as other:
        imported = import_json(other, exported)
        assert imported == other.get_conversation(original.id)
        assert other.list_conversations()[0].id == original.id
    assert without_paths(imported) == without_paths(original)
    pairs = [(a, b) for m, n in zip(original.messages, imported.messages)
             for a, b in zip(m.attachments, n.attachments)]
    assert len(pairs) == 2
    for before, after in pairs:
        assert after.path != before.path and after.path.read_bytes() == before.path.read_bytes()
    assert str(tmp_path / "elsewhere") in str(pairs[0][1].path)


def test_importing_twice_gives_a_copy_with_new_ids(store, tmp_path):
    original = make_chat(store)
    copy = import_json(store, export_json(original, tmp_path / "chat.json"))
    assert copy.id != original.id
    assert {m.id for m in copy.messages}.isdisjoint(m.id for m in original.messages)
    assert [m.text for m in copy.messages] == [m.text for m in original.messages]
    assert copy.messages[0].attachments[0].path == original.messages[0].attachments[0].path
    assert len(store.search("ferry")) == 4  # both chats are searchable


def test_damaged_or_foreign_files_are_refused_clearly(store, tmp_path):
    good = json.loads(export_json(make_chat(store), tmp_path / "chat.json").read_text())
    cases = {
        "not json": ("{oops", "not JSON"),
        "foreign": (json.dumps({"format": "other-app"}), "not a Gemma Desk chat export"),
        "newer": (json.dumps({**good, "version": 99}), "newer Gemma Desk"),
        "incomplete": (json.dumps({**good, "conversation": {"id": "x"}}), "incomplete"),
    }
    tampered = json.loads(json.dumps(good))
    attachment = tampered["conversation"]["messages"][0]["attachments"][0]
    attachment["data_base64"] = base64.b64encode(b"other bytes").decode()
    cases["tampered"] = (json.dumps(tampered), "does not match its sha256")
    before = len(store.list_conversations())
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            import_json(store, path)
    assert len(store.list_conversations()) == before


def test_markdown_has_the_text_and_the_images_beside_it(store, tmp_path):
    chat = make_chat(store)
    path = export_markdown(chat, tmp_path / "out")
    text = path.read_text("utf-8")
    assert path.name == "Trip planning & more.md"
    assert text.startswith("# Trip <planning> & more\n")
    assert "Answer briefly." in text and "A **harbour** with" in text
    assert "![harbour photo.png](<Trip planning & more_files/harbour photo.png>)" in text
    assert "[notes.txt](<Trip planning & more_files/notes.txt>)" in text
    assert "*(stopped)*" in text and "## Gemma" in text and "## You" in text
    files = path.with_name("Trip planning & more_files")
    assert (files / "harbour photo.png").read_bytes() == PNG
    again = export_markdown(chat, tmp_path / "out")  # never overwrites an earlier export
    assert again.name == "Trip planning & more (2).md" and path.exists()


def test_html_is_self_contained_and_escaped(store, tmp_path):
    chat = make_chat(store)
    page = export_html(chat, tmp_path / "chat.html").read_text("utf-8")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>boats</b>" not in page and "&lt;b&gt;boats&lt;/b&gt;" in page
    assert "<strong>harbour</strong>" in page  # the model's Markdown is rendered
    assert "<title>Trip &lt;planning&gt; &amp; more</title>" in page
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 1 and "src='data:image/png;base64," in images[0]  # nothing remote
    assert '<a href="http://t.example/p.png">x</a>' in page  # the model's image: a plain link
    assert "Ferry at 9:40, pier 3." in page and "(stopped)" in page


def test_export_all_writes_one_file_per_chat(store, tmp_path):
    for _ in range(2):
        make_chat(store, title="Same: title?")
    untitled = store.create_conversation()
    store.add_message(untitled.id, "model", "hello")
    for fmt, suffix in (("json", ".json"), ("markdown", ".md"), ("html", ".html")):
        written = export_all(store, tmp_path / fmt, fmt)
        assert len(written) == 3 and len(set(written)) == 3
        assert all(p.suffix == suffix and p.exists() for p in written)
    names = sorted(p.name for p in (tmp_path / "json").iterdir())
    assert names == ["New chat.json", "Same title (2).json", "Same title.json"]
    with pytest.raises(ValueError, match="export format"):
        export_all(store, tmp_path, "pdf")
