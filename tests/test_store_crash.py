"""Other processes: one killed mid-answer, two writing at once, a second app instance."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.paths import data_dir
from app.store import Store, acquire_instance_lock, release_instance_lock

ROOT = Path(__file__).resolve().parents[1]

STREAM_FOREVER = """
from app.store import Store, StreamingSaver
store = Store()
chat = store.create_conversation()
store.add_message(chat.id, "user", "What is the capital of Norway?")
store.add_message(chat.id, "model", "Oslo.")
store.add_message(chat.id, "user", "Count for me, slowly.")
saver = StreamingSaver.start(store, chat.id, interval_s=0)
i = 0
while True:
    saver.append(f"w{i} ")
    i += 1
    if i == 30:
        print(chat.id, saver.message_id, flush=True)
"""

WRITE_MANY = """
import sys
from app.store import Store
store = Store(recover=False)
name, shared = sys.argv[1], sys.argv[2]
own = store.create_conversation(name)
for i in range(40):
    store.add_message(own.id, "user", f"{name} private note {i}")
    store.add_message(shared, "model", f"{name} shared note {i}")
    if i % 10 == 0:
        store.rename(shared, f"renamed by {name}")
print(own.id)
"""

HOLD_LOCK = """
import sys
from app.store import acquire_instance_lock
print(acquire_instance_lock(), flush=True)
sys.stdin.read()
"""


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, **kwargs)


def test_killed_mid_answer_keeps_every_message_and_the_partial_answer():
    child = python(STREAM_FOREVER)
    chat_id, answer_id = child.stdout.readline().split()
    child.kill()  # SIGKILL: no cleanup, possibly in the middle of a write
    child.wait()
    with Store() as store:
        assert store.interrupted_ids == [answer_id]
        messages = store.get_conversation(chat_id).messages
        assert [(m.role, m.status) for m in messages] == [
            ("user", "complete"), ("model", "complete"), ("user", "complete"),
            ("model", "interrupted")]
        assert [m.text for m in messages[:3]] == [
            "What is the capital of Norway?", "Oslo.", "Count for me, slowly."]
        partial = messages[3].text
        pieces = partial.split()
        assert len(pieces) >= 30 and pieces == [f"w{i}" for i in range(len(pieces))]
        assert messages[3].can_continue
        assert store.search("w29")[0].message_id == answer_id
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_writing_at_once_corrupt_nothing():
    with Store() as store:
        shared = store.create_conversation("shared")
    writers = [python(WRITE_MANY, name, shared.id) for name in ("alpha", "beta")]
    own_ids = [writer.communicate(timeout=120)[0].strip() for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    with Store() as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store._db.execute("INSERT INTO messages_fts(messages_fts, rank) "
                          "VALUES ('integrity-check', 1)")
        for name, own_id in zip(("alpha", "beta"), own_ids):
            texts = [m.text for m in store.get_conversation(own_id).messages]
            assert texts == [f"{name} private note {i}" for i in range(40)]
        shared_texts = [m.text for m in store.get_conversation(shared.id).messages]
        for name in ("alpha", "beta"):
            mine = [t for t in shared_texts if t.startswith(name)]
            assert mine == [f"{name} shared note {i}" for i in range(40)]  # each in its order
        assert len(shared_texts) == 80
        assert len(store.search("shared note")) == 50  # the default limit
        assert store.get_conversation(shared.id).title.startswith("renamed by ")


def test_a_second_instance_is_refused_until_the_first_exits():
    holder = python(HOLD_LOCK, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "True"
        assert not acquire_instance_lock()
    finally:
        holder.communicate("")  # closes its stdin: it exits and the OS drops its lock
    try:
        assert acquire_instance_lock()
        assert (data_dir() / "instance.lock").exists()
    finally:
        release_instance_lock()


def test_a_file_half_copied_when_the_app_died_is_removed_by_the_next_app(tmp_path):
    Store(tmp_path / "chats.sqlite3").close()
    leftover = tmp_path / "attachments" / "incoming-0123abcd"
    leftover.parent.mkdir()
    leftover.write_bytes(b"half a picture")
    Store(tmp_path / "chats.sqlite3", recover=False).close()  # another process: may be copying
    assert leftover.exists()
    Store(tmp_path / "chats.sqlite3").close()
    assert not leftover.exists()
