"""Chats are never lost and deleted chats are gone: migrations, backups, corrupt files, delete."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from app.paths import data_dir
from app.store import Store, StoreError, StoreTooNewError, StreamingSaver
from app.store_db import MIGRATIONS, SCHEMA_VERSION, is_corruption
from app.store_files import InstanceLock, acquire_instance_lock, release_instance_lock

sqlite3_connect = sqlite3.connect


def write_v1_database(path):
    """A database exactly as the first schema version left it, with two chats in it."""
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.executemany("INSERT INTO conversations (id, title, created_at, updated_at) VALUES "
                   "(?, ?, ?, ?)", [("c1", "Old trip", 100.0, 200.0), ("c2", "Recipes", 300.0,
                                                                           400.0)])
    db.executemany(
        "INSERT INTO messages (id, conversation_id, role, text, status, created_at, stats) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [("m1", "c1", "user", "Which fjord has the steepest cliffs?", "complete", 101.0, "{}"),
         ("m2", "c1", "model", "Geirangerfjord is famous for them.", "complete", 102.0,
          '{"tokens_per_s": 9.5}'),
         ("m3", "c2", "user", "A recipe for saffron buns, please.", "complete", 301.0, "{}"),
         ("m4", "c2", "model", "Mix flour, butter and saff", "streaming", 302.0, "{}")])
    db.execute("INSERT INTO attachments VALUES ('m3', 0, 'image', 'bun.jpg', 'ab12', 3, "
               "'image/jpeg', 258, NULL, NULL, NULL)")
    db.commit()
    db.close()


def test_migration_from_the_first_schema_keeps_every_chat_and_leaves_a_backup():
    path = data_dir() / "chats.sqlite3"
    write_v1_database(path)
    with Store() as store:
        assert store.backup_path is not None and store.backup_path.parent.name == "backups"
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        chats = store.list_conversations()
        assert [(c.id, c.title, c.pinned, c.folder) for c in chats] == [
            ("c2", "Recipes", False, None), ("c1", "Old trip", False, None)]
        trip = store.get_conversation("c1")
        assert [(m.id, m.role, m.text) for m in trip.messages] == [
            ("m1", "user", "Which fjord has the steepest cliffs?"),
            ("m2", "model", "Geirangerfjord is famous for them.")]
        assert trip.messages[1].stats == {"tokens_per_s": 9.5}
        buns = store.get_conversation("c2")
        assert buns.messages[0].attachments[0].name == "bun.jpg"
        assert buns.messages[1].status == "interrupted"  # it was mid-answer when v1 closed
        # search finds words in the old chats and points to the message
        assert [(h.conversation_id, h.message_id) for h in store.search("fjord cliffs")] == [
            ("c1", "m1")]
        assert sorted(h.message_id for h in store.search("saff")) == ["m3", "m4"]
        store.set_pinned("c1", True)  # the new columns work
        assert store.list_conversations()[0].id == "c1"
    backup = sqlite3.connect(store.backup_path)
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
    assert backup.execute("SELECT count(*) FROM messages").fetchone()[0] == 4
    backup.close()
    with Store() as store:
        assert store.backup_path is None  # nothing to migrate, no new backup


def test_a_new_database_needs_no_backup():
    with Store() as store:
        assert store.backup_path is None
    assert not (data_dir() / "backups").exists()


def test_a_database_from_a_newer_app_is_refused_and_untouched():
    path = data_dir() / "chats.sqlite3"
    with Store() as store:
        store.add_message(store.create_conversation().id, "user", "future")
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreTooNewError, match="newer Gemma Desk"):
        Store()
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_moved_aside():
    path = data_dir() / "chats.sqlite3"
    path.write_bytes(b"this is not an SQLite file at all" * 200)
    with Store() as store:
        aside = store.recovered_from_corruption
        assert aside is not None and aside.name.startswith("chats.sqlite3.corrupt-")
        assert aside.read_bytes() == b"this is not an SQLite file at all" * 200
        assert str(aside) in store.recovery_notice and "new, empty" in store.recovery_notice
        chat = store.create_conversation()  # the fresh store works
        store.add_message(chat.id, "user", "starting over")
    with Store() as store:
        assert store.recovered_from_corruption is None
        assert store.get_conversation(chat.id).messages[0].text == "starting over"


def test_a_damaged_page_is_kept_aside_and_every_readable_message_copied_out():
    path = data_dir() / "chats.sqlite3"
    with Store() as store:
        chats = [store.create_conversation(f"chat {c}") for c in range(3)]
        for chat in chats:
            for i in range(40):
                store.add_message(chat.id, "user", f"message {chat.title} {i} " * 30)
        answer = store.add_message(chats[0].id, "model", "cut short", status="streaming")
        store.scrub()  # everything into the main file
    page_size = 4096
    damaged = bytearray(path.read_bytes())
    page = damaged.find(b"message chat 1 20 ") // page_size  # in the middle of the messages
    damaged[page * page_size: (page + 1) * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(damaged))
    with Store() as store:
        aside = store.recovered_from_corruption
        assert aside.read_bytes() == bytes(damaged)  # kept exactly as it was...
        assert sorted(p.name for p in data_dir().glob(f"{aside.name}*")) == [aside.name]
        assert "3 chat(s) could still be read" in store.recovery_notice
        assert str(aside) in store.recovery_notice
        saved = {c.id: store.get_conversation(c.id).messages for c in store.list_conversations()}
        assert set(saved) == {c.id for c in chats}
        texts = [m.text for messages in saved.values() for m in messages]
        assert 100 < len(texts) < 121  # only what was on the destroyed page is missing
        assert not any(text.startswith("message chat 1 20 ") for text in texts)
        assert store.interrupted_ids == [answer.id] and "cut short" in texts
        assert len(store.search("message chat")) == 50  # the copies are searchable
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_damaged_database_and_the_wal_a_killed_process_left_are_kept_as_they_were():
    path, wal = data_dir() / "chats.sqlite3", data_dir() / "chats.sqlite3-wal"
    with Store() as store:
        old = store.create_conversation("checkpointed")
        for i in range(30):
            store.add_message(old.id, "user", f"old message {i} " * 30)
        store.scrub()  # in the main file
        store._db.execute("PRAGMA wal_autocheckpoint = 0")
        recent = store.create_conversation("only in the WAL")
        store.add_message(recent.id, "user", "written just before the crash")
        left_behind = path.read_bytes(), wal.read_bytes()  # what a SIGKILL leaves on disk
    damaged = bytearray(left_behind[0])
    page = damaged.find(b"old message 12 ") // 4096
    damaged[page * 4096:(page + 1) * 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(damaged))
    wal.write_bytes(left_behind[1])
    with Store() as store:
        aside = store.recovered_from_corruption
        assert aside.read_bytes() == bytes(damaged)  # not checkpointed into by the open
        assert Path(f"{aside}-wal").read_bytes() == left_behind[1]
        assert store.get_conversation(recent.id).messages[0].text == \
            "written just before the crash"  # read from the WAL by the salvage
        assert 20 < len(store.get_conversation(old.id).messages) < 30


def test_a_zero_byte_or_a_garbage_wal_file_loses_nothing():
    path = data_dir() / "chats.sqlite3"
    path.write_bytes(b"")  # what a crash while creating the file can leave
    with Store() as store:
        assert store.recovery_notice is None
        chat = store.create_conversation("kept")
        store.add_message(chat.id, "user", "still here")
    Path(f"{path}-wal").write_bytes(b"\x17" * 10_000)  # not a WAL SQLite wrote: ignored
    with Store() as store:
        assert store.recovery_notice is None
        assert store.get_conversation(chat.id).messages[0].text == "still here"


def test_busy_or_locked_is_never_taken_for_corruption():
    assert not is_corruption(sqlite3.OperationalError("database is locked"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))


def test_deleting_a_chat_leaves_none_of_its_text_on_disk():
    secret = "Zyxwvut harbour code is 58213 and the vault word is quokkamarmalade"
    with Store() as store:
        kept = store.create_conversation("Kept chat")
        store.add_message(kept.id, "user", "Keepsake phrase: lighthousewaffle stays")
        doomed = store.create_conversation("Doomed budgetplan")
        document = store.add_attachment_file(
            b"private ledger bytes", "ledger.txt", "document",
            extracted_text="ledger mentions quokkamarmalade too")
        store.add_message(doomed.id, "user", secret, [document])
        store.add_message(doomed.id, "user", "Overflowingsecret " * 3000)  # spans many pages
        saver = StreamingSaver.start(store, doomed.id, interval_s=0)
        for word in "the quokkamarmalade answer grows piece by piece".split():
            saver.append(word + " ")  # each save leaves a version of the text behind
        saver.finish()
        assert store.search("quokkamarmalade")
        assert store.delete_conversation(doomed.id)
        assert store.search("quokkamarmalade") == [] and not document.path.exists()
        # the search index keeps words lower-cased, so look for them that way too
        needles = ("quokkamarmalade", "zyxwvut", "58213", "budgetplan", "ledger mentions",
                   "overflowingsecret")
        assert [n for n in needles if n.encode() in raw_database().lower()] == []
        assert b"lighthousewaffle" in raw_database()  # the byte search sees what is there
        assert store.search("lighthousewaffle")[0].conversation_id == kept.id


def raw_database() -> bytes:
    files = [p for p in data_dir().iterdir() if p.name.startswith("chats.sqlite3")]
    return b"".join(p.read_bytes() for p in files)


def test_text_held_in_the_wal_by_another_reader_is_gone_once_the_store_closes():
    with Store() as store:
        doomed = store.create_conversation()
        store.add_message(doomed.id, "user", "Pangolinsecret travels")
        reader = sqlite3.connect(data_dir() / "chats.sqlite3")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()  # holds the old snapshot
        assert not store.delete_conversation(doomed.id)  # the WAL could not be emptied
        assert b"pangolinsecret" in raw_database().lower()
        reader.rollback()  # the reader moves on (it stays connected, as another app would)
    assert b"pangolinsecret" not in raw_database().lower()
    reader.close()


def test_only_one_instance_holds_the_data_folder():
    path = data_dir() / "instance.lock"
    first, second = InstanceLock(path), InstanceLock(path)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    try:
        assert acquire_instance_lock()
        assert not InstanceLock(path).acquire()
    finally:
        release_instance_lock()
    assert InstanceLock(path).acquire()


def fill_the_disk(store: Store) -> None:
    """From now on the database cannot grow: SQLite answers SQLITE_FULL, as on a full disk."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_is_a_clear_error_and_loses_nothing(store_with_chat):
    store, chat = store_with_chat
    fill_the_disk(store)
    with pytest.raises(StoreError, match="could not save your chat: the disk is full") as error:
        store.add_message(chat.id, "user", "a long question " * 2000)
    assert str(data_dir()) in str(error.value) and "Free some space" in str(error.value)
    assert isinstance(error.value, OSError)  # callers catching OSError see it too
    with pytest.raises(StoreError, match="disk is full"):
        store.create_conversation("another", system_prompt="Be thorough. " * 2000)
    assert [m.text for m in store.get_conversation(chat.id).messages] == ["first question"]
    store._db.execute("PRAGMA max_page_count = 1073741823")  # space freed: writing works again
    store.add_message(chat.id, "user", "second question")
    assert len(store.get_conversation(chat.id).messages) == 2


def test_an_answer_keeps_streaming_when_a_save_fails(store_with_chat):
    store, chat = store_with_chat
    saver = StreamingSaver.start(store, chat.id, interval_s=0)
    saver.append("saved part. ")
    fill_the_disk(store)
    saver.append("unsaved part " * 500)  # no exception into the token handler...
    assert "disk is full" in str(saver.save_error)  # ...but the reason is there to show
    assert store.get_message(saver.message_id).text == "saved part. "
    store._db.execute("PRAGMA max_page_count = 1073741823")
    saver.append("end.")  # the next save writes everything that was held back
    assert saver.save_error is None
    assert store.get_message(saver.message_id).text == saver.text
    saver.finish()
    assert store.get_message(saver.message_id).status == "complete"


def test_when_the_last_save_fails_the_answer_is_interrupted_as_last_saved():
    with Store() as store:
        chat = store.create_conversation()
        saver = StreamingSaver.start(store, chat.id, interval_s=0)
        saver.append("what was saved ")
        fill_the_disk(store)
        saver.append("and what was not " * 500)
        with pytest.raises(StoreError, match="could not save the answer: the disk is full"):
            saver.finish()
    with Store() as store:
        message = store.get_message(saver.message_id)
        assert (message.text, message.status) == ("what was saved ", "interrupted")


def test_a_data_folder_that_cannot_be_made_or_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("in the way")
    with pytest.raises(StoreError, match="could not open your chats: part of its path is a "
                                         "file, not a folder"):
        Store(blocker / "data" / "chats.sqlite3")
    with Store() as store:
        chat = store.create_conversation()
        store._db.execute("PRAGMA query_only = ON")  # SQLite now answers SQLITE_READONLY
        with pytest.raises(StoreError, match="the data folder is read-only.*Make it writable"):
            store.add_message(chat.id, "user", "hello")
        with pytest.raises(StoreError, match="could not delete the chat: .*read-only"):
            store.delete_conversation(chat.id)
        assert store.list_conversations()[0].id == chat.id  # reading still works


def test_a_store_that_fails_to_open_leaves_no_connection_behind(monkeypatch):
    opened = []

    def connect(*args, **kwargs):
        opened.append(sqlite3_connect(*args, **kwargs))
        return opened[-1]

    def fail(store):
        raise StoreError("the data folder is read-only")

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(Store, "recover_interrupted", fail)
    with pytest.raises(StoreError, match="read-only"):
        Store()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[-1].execute("SELECT 1")


def test_a_full_disk_while_copying_an_attachment_leaves_no_half_file(monkeypatch):
    with Store() as store:
        def no_space(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("app.store_files.os.fsync", no_space)
        with pytest.raises(StoreError, match="could not copy report.pdf into the data folder: "
                                             "the disk is full"):
            store.add_attachment_file(b"%PDF quarterly numbers", "report.pdf")
        assert [p for p in (data_dir() / "attachments").rglob("*") if p.is_file()] == []


@pytest.fixture
def store_with_chat():
    with Store() as store:
        chat = store.create_conversation()
        store.add_message(chat.id, "user", "first question")
        yield store, chat
