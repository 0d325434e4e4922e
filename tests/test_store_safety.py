"""Chats are never lost and deleted chats are gone: migrations, backups, corrupt files, delete."""

from __future__ import annotations

import sqlite3

import pytest

from app.paths import data_dir
from app.store import Store, StoreTooNewError, StreamingSaver
from app.store_db import MIGRATIONS, SCHEMA_VERSION, is_corruption
from app.store_files import InstanceLock, acquire_instance_lock, release_instance_lock


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


def test_a_damaged_page_is_detected_and_the_file_kept_aside():
    path = data_dir() / "chats.sqlite3"
    with Store() as store:
        chat = store.create_conversation()
        for i in range(40):
            store.add_message(chat.id, "user", f"message number {i} " * 40)
        store.scrub()  # everything into the main file
    page_size = 4096
    damaged = bytearray(path.read_bytes())
    assert len(damaged) > 6 * page_size
    damaged[3 * page_size: 5 * page_size] = b"\xa5" * (2 * page_size)
    path.write_bytes(bytes(damaged))
    with Store() as store:
        assert store.recovered_from_corruption.read_bytes() == bytes(damaged)
        assert store.list_conversations() == []


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
        saver = StreamingSaver.start(store, doomed.id, interval_s=0)
        for word in "the quokkamarmalade answer grows piece by piece".split():
            saver.append(word + " ")  # each save leaves a version of the text behind
        saver.finish()
        assert store.search("quokkamarmalade")
        assert store.delete_conversation(doomed.id)
        assert store.search("quokkamarmalade") == [] and not document.path.exists()
        store_files = [p for p in data_dir().iterdir() if p.name.startswith("chats.sqlite3")]
        raw = b"".join(p.read_bytes() for p in store_files)
        needles = ("quokkamarmalade", "Zyxwvut", "58213", "budgetplan", "ledger mentions")
        assert [n for n in needles if n.encode() in raw] == []
        assert b"lighthousewaffle" in raw  # the byte search does see what is still there
        assert store.search("lighthousewaffle")[0].conversation_id == kept.id


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
