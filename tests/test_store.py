"""The chat store: conversations, messages, attachments, search, streaming saves."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from app.conversation import Conversation, Message
from app.paths import config_dir, data_dir
from app.store import Store, StoreError, StreamingSaver
from app.store_search import LONG_TEXT, MATCH_END, MATCH_START, MAX_WORDS, match_expression


@pytest.fixture
def store():
    with Store() as opened:
        yield opened


def fts_is_consistent(store: Store) -> bool:
    """FTS5's own check that the index matches the messages table exactly."""
    try:
        store._db.execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError:
        return False
    return True


def test_paths_follow_the_environment(tmp_path):
    assert data_dir() == tmp_path / "data" and data_dir().is_dir()
    assert config_dir() == tmp_path / "config" and config_dir().is_dir()


def test_store_lives_in_the_data_folder_and_survives_reopening():
    with Store() as store:
        chat = store.create_conversation(system_prompt="Be brief.")
        store.add_message(chat.id, "user", "Hello there")
    assert (data_dir() / "chats.sqlite3").exists()
    with Store() as store:
        again = store.get_conversation(chat.id)
    assert again.system_prompt == "Be brief."
    assert [(m.role, m.text, m.status) for m in again.messages] == [("user", "Hello there",
                                                                     "complete")]


def test_list_is_pinned_first_then_newest_first(store):
    first, second, third = (store.create_conversation(f"chat {i}") for i in range(3))
    store.add_message(first.id, "user", "bump")  # first is now the most recently updated
    assert [c.id for c in store.list_conversations()] == [first.id, third.id, second.id]
    store.set_pinned(second.id, True)
    listed = store.list_conversations()
    assert [c.id for c in listed] == [second.id, first.id, third.id]
    assert listed[0].pinned and not listed[1].pinned


def test_first_user_message_names_the_chat_and_rename_wins(store):
    chat = store.create_conversation()
    assert store.get_conversation(chat.id).display_title == "New chat"
    store.add_message(chat.id, "user", "How do  tides work on the\nnorth coast of Brittany?")
    assert store.get_conversation(chat.id).title == "How do tides work on the"
    store.rename(chat.id, "  Tides  ")
    store.add_message(chat.id, "user", "And in winter?")
    assert store.get_conversation(chat.id).title == "Tides"


def test_folders_and_system_prompt(store):
    a, b = store.create_conversation("a"), store.create_conversation("b")
    store.set_folder(a.id, "Work")
    store.set_system_prompt(b.id, "Answer in French.")
    assert store.folders() == ["Work"]
    assert [c.id for c in store.list_conversations(folder="Work")] == [a.id]
    assert store.get_conversation(b.id).system_prompt == "Answer in French."
    store.set_folder(a.id, None)
    assert store.folders() == []


def test_bad_ids_and_values_are_clear_errors(store):
    with pytest.raises(KeyError, match="no conversation"):
        store.get_conversation("nope")
    with pytest.raises(KeyError, match="no conversation"):
        store.add_message("nope", "user", "hi")
    with pytest.raises(KeyError, match="no conversation"):
        store.rename("nope", "x")
    chat = store.create_conversation()
    with pytest.raises(ValueError, match="role"):
        store.add_message(chat.id, "assistant", "hi")
    message = store.add_message(chat.id, "model", "", status="streaming")
    with pytest.raises(ValueError, match="status"):
        store.finish_message(message.id, "streaming")
    with pytest.raises(ValueError, match="file name"):
        store.add_attachment_file(b"bytes")


def test_attachments_are_content_addressed_files(store, tmp_path):
    photo = tmp_path / "cat.png"
    photo.write_bytes(b"\x89PNG fake image bytes")
    first = store.add_attachment_file(photo, kind="image")
    second = store.add_attachment_file(photo.read_bytes(), "same-cat.png", "image")
    assert first.sha256 == second.sha256 and first.path == second.path
    assert first.path.parent.parent == data_dir() / "attachments"
    assert first.path.read_bytes() == photo.read_bytes()
    assert (first.name, first.mime, first.size) == ("cat.png", "image/png", photo.stat().st_size)
    doc = store.add_attachment_file(b"Minutes of the meeting", "notes.txt", "document",
                                    extracted_text="Minutes of the meeting", token_cost=5)
    chat = store.create_conversation()
    store.add_message(chat.id, "user", "", attachments=[first, doc])
    saved = store.get_conversation(chat.id)
    assert saved.messages[0].attachments == [first, doc]
    assert saved.title == "cat.png notes.txt"
    raw = (data_dir() / "chats.sqlite3").read_bytes() + _wal_bytes()
    assert b"fake image bytes" not in raw  # files, never blobs in the database


def _wal_bytes() -> bytes:
    wal = data_dir() / "chats.sqlite3-wal"
    return wal.read_bytes() if wal.exists() else b""


def test_delete_messages_after_keeps_earlier_turns_and_shared_files(store):
    picture = store.add_attachment_file(b"picture", "p.png", "image")
    only_later = store.add_attachment_file(b"only in the later turn", "q.png", "image")
    chat = store.create_conversation()
    question = store.add_message(chat.id, "user", "question", [picture])
    store.add_message(chat.id, "model", "answer")
    store.add_message(chat.id, "user", "follow-up", [picture, only_later])
    store.add_message(chat.id, "model", "second answer")
    store.delete_messages_after(question.id)
    assert [m.text for m in store.get_conversation(chat.id).messages] == ["question"]
    assert picture.path.exists() and not only_later.path.exists()
    store.delete_message(question.id)
    assert store.get_conversation(chat.id).messages == [] and not picture.path.exists()
    assert fts_is_consistent(store)


def test_an_attachment_not_yet_sent_is_never_deleted(store):
    picture = store.add_attachment_file(b"shared picture", "p.png", "image")
    old = store.create_conversation()
    store.add_message(old.id, "user", "old", [picture])
    pending = store.add_attachment_file(b"shared picture", "p.png", "image")  # in the composer
    store.delete_conversation(old.id)
    assert pending.path.exists()


def test_search_finds_words_and_points_to_the_message(store):
    chat = store.create_conversation("Travel")
    store.add_message(chat.id, "user", "Where is the best café in Montréal?")
    answer = store.add_message(chat.id, "model", "Try the one near the old harbour, by the river.")
    other = store.create_conversation("Cooking")
    store.add_message(other.id, "user", "How long do I boil an egg?")
    hits = store.search("harbour river")
    assert [(h.conversation_id, h.message_id, h.role) for h in hits] == [(chat.id, answer.id,
                                                                         "model")]
    assert hits[0].conversation_title == "Travel"
    assert ("harbour", True) in hits[0].parts() and ("river", True) in hits[0].parts()
    assert [h.message_id for h in store.search("harb")]  == [answer.id]  # while typing
    assert len(store.search("cafe montreal")) == 1  # accents do not matter
    assert store.search("harbour egg") == []
    assert store.search('"unbalanced (quote* AND') == []  # never an FTS syntax error
    assert store.search("  ?! ") == []
    assert match_expression("don't stop") == '"don" "t" "stop"*'


def test_search_follows_edits_and_streaming(store):
    chat = store.create_conversation()
    message = store.add_message(chat.id, "user", "apples")
    store.update_message_text(message.id, "pears")
    assert store.search("apples") == [] and len(store.search("pears")) == 1
    answer = store.add_message(chat.id, "model", "", status="streaming")
    store.update_message_text(answer.id, "plums are ripe")
    assert store.search("plums") == []  # indexed once it stops changing
    store.finish_message(answer.id, "stopped", {"tokens_per_s": 12.5})
    assert [h.message_id for h in store.search("plums")] == [answer.id]
    assert fts_is_consistent(store)


def test_reopening_marks_unfinished_answers_interrupted():
    with Store() as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "tell me a story")
        answer = store.add_message(chat.id, "model", "Once upon", status="streaming")
    with Store(recover=False) as observer:
        assert observer.get_message(answer.id).status == "streaming"
    with Store() as store:
        assert store.interrupted_ids == [answer.id]
        message = store.get_message(answer.id)
        assert (message.text, message.status, message.can_continue) == ("Once upon",
                                                                         "interrupted", True)
        assert store.search("upon")[0].message_id == answer.id


def test_streaming_saver_saves_and_closes(store):
    chat = store.create_conversation()
    saver = StreamingSaver.start(store, chat.id, interval_s=0)
    saver.append("Hello")
    assert store.get_message(saver.message_id).text == "Hello"
    saver.append(", world")
    saver.finish({"tokens_per_s": 20.0, "ttft_s": 0.3})
    saver.append(" (late piece)")
    message = store.get_message(saver.message_id)
    assert (message.text, message.status) == ("Hello, world", "complete")
    assert message.stats == {"tokens_per_s": 20.0, "ttft_s": 0.3}


def test_streaming_saver_writes_on_its_own_when_tokens_pause(store):
    chat = store.create_conversation()
    saver = StreamingSaver.start(store, chat.id, interval_s=0.05)
    saved = threading.Event()
    original = store.update_message_text
    store.update_message_text = lambda *args: (original(*args), saved.set())
    saver.append("a slow token")  # no further piece comes: the timer must save it
    assert saved.wait(timeout=10)
    assert store.get_message(saver.message_id).text == "a slow token"
    saver.fail("out of memory")
    message = store.get_message(saver.message_id)
    assert (message.status, message.error, message.can_continue) == ("error", "out of memory",
                                                                     True)


def test_stop_keeps_the_partial_answer(store):
    chat = store.create_conversation()
    saver = StreamingSaver.start(store, chat.id)  # one-second interval: nothing saved yet
    saver.append("The first half")
    saver.stop({"tokens": 3})
    message = store.get_message(saver.message_id)
    assert (message.text, message.status, message.stats) == ("The first half", "stopped",
                                                             {"tokens": 3})


def test_any_text_is_stored_as_written_or_made_storable(store):
    odd = "emoji 👩‍👩‍👧 café\x00after a NUL byte, zebra"
    chat = store.create_conversation("🎉 party\x00plans", system_prompt="répondez\x00")
    message = store.add_message(chat.id, "user", odd)
    saved = store.get_conversation(chat.id)
    assert (saved.title, saved.system_prompt) == ("🎉 party\x00plans", "répondez\x00")
    assert saved.messages[0].text == odd
    assert [h.message_id for h in store.search("zebra")] == [message.id]  # found after the NUL
    # a lone UTF-16 half (from a clipboard, a JSON file) cannot be UTF-8: U+FFFD, not a crash
    torn = store.add_message(chat.id, "user", "half \ud83d of an emoji, whole \ud83d\ude00")
    assert torn.text == "half \ufffd of an emoji, whole 😀"
    assert store.get_message(torn.id).text == torn.text
    store.rename(chat.id, "bad \udc80 title")
    assert store.get_conversation(chat.id).title == "bad \ufffd title"
    file = store.add_attachment_file(b"notes", "n\udc80.txt", extracted_text="x\ud800")
    store.add_message(chat.id, "user", "", [file])
    assert (file.name, file.extracted_text) == ("n\ufffd.txt", "x\ufffd")
    saver = StreamingSaver.start(store, chat.id, interval_s=0)
    saver.append("torn \udc80 answer")
    saver.finish()
    assert store.get_message(saver.message_id).text == "torn \ufffd answer"


def test_an_imported_chat_with_torn_text_is_stored(store):
    chat = Conversation("c" * 32, "imported \ud800", 1.0, 2.0)
    chat.messages = [Message("m" * 32, chat.id, "user", "text \udfff", created_at=1.5)]
    store.insert_conversation(chat)
    assert store.get_message("m" * 32).text == "text \ufffd"


def test_a_five_megabyte_message_is_saved_found_and_deleted(store):
    text = "lorem ipsum dolor sit amet " * 190_000 + "the Ünïcode needle at the very end"
    chat = store.create_conversation()
    message = store.add_message(chat.id, "user", text)
    assert store.get_message(message.id).text == text
    (hit,) = store.search("unicode needle")
    assert hit.message_id == message.id and ("Ünïcode", True) in hit.parts()
    store.delete_conversation(chat.id)
    assert store.search("needle") == []


@pytest.mark.parametrize("query", [
    '"', "'", "*", "-", "-foo", "NEAR", "NEAR(a b)", "NEAR(", "a OR", "AND", "NOT zebra",
    "(((", ")", "a:b", "text:zebra", "{text}: x", "^x", '""', "\x00", "*zebra", "zeb*",
    "🎉", "\ud800", "c++", "e-mail", "zebra\"", "zebra NEAR", "a" * 10_000, "zebra " * 5000,
    " ".join(f"w{i}" for i in range(3000))])
def test_no_query_is_an_error(store, query):
    chat = store.create_conversation()
    store.add_message(chat.id, "user", "a zebra with an e-mail address, c and NEAR")
    hits = store.search(query)
    assert isinstance(hits, list)
    if query in ("zebra " * 5000, "zeb*", "*zebra", "zebra NEAR", 'zebra"', "e-mail"):
        assert len(hits) == 1  # the operators are plain words: every word must be there


def test_a_query_keeps_its_first_words_once_each():
    assert match_expression("zebra Zebra zebra lion") == '"zebra" "Zebra" "lion"*'
    many = match_expression(" ".join(f"w{i}" for i in range(100)))
    assert many.count('"') == 2 * MAX_WORDS and many.endswith(f'"w{MAX_WORDS - 1}"*')


def test_a_long_message_gets_a_short_snippet_around_its_first_match(store):
    # FTS5's snippet() takes seconds for a long message full of matches; such messages get a
    # snippet cut in Python, which must match the way the index matches words
    text = "Filler words here. " * 1000 + "Then the Crème brûlée recipe, and more crème. " + \
        "Tail words. " * 1000
    assert len(text) > LONG_TEXT
    chat = store.create_conversation()
    store.add_message(chat.id, "user", text)
    (hit,) = store.search("creme brul")
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert len(hit.snippet) < 300
    assert [part for part, match in hit.parts() if match] == ["Crème", "brûlée", "crème"]
    assert MATCH_START + "Crème" + MATCH_END + " " + MATCH_START + "brûlée" in hit.snippet
    (start,) = store.search("filler")  # a match at the very start: no leading ellipsis
    assert start.parts()[0] == ("Filler", True) and not start.snippet.startswith("…")


def test_an_attachment_that_disappeared_is_a_clear_error(store, tmp_path):
    gone = tmp_path / "report.pdf"
    with pytest.raises(StoreError, match=r"report.pdf could not be attached: it is no longer "
                                         r"there \(.*report.pdf\)"):
        store.add_attachment_file(gone)
    with pytest.raises(StoreError, match="notes could not be attached: it cannot be read"):
        store.add_attachment_file(tmp_path, "notes")  # a folder, not a file
    attachments = data_dir() / "attachments"
    assert not attachments.exists() or [p for p in attachments.rglob("*") if p.is_file()] == []
