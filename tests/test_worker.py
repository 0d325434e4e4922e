"""The inference thread with the real bundled 270M: loading, streaming, stop, errors, counts."""

from __future__ import annotations

import pytest

from tests.app_support import picture, real_client

LONG = 120_000  # ms: the shared test machine can be slow


@pytest.fixture(scope="module")
def client(qapp):
    return real_client()


def request(text: str, max_new_tokens: int = 3, **extra) -> dict:
    return {"turns": [{"role": "user", "text": text, "attachments": []}], "system": "",
            "pan_and_scan": False, "continue_last": False, "max_new_tokens": max_new_tokens,
            "sampling": None, "reserve": 0, **extra}


def run(qtbot, client, req: dict, on_token=None):
    """Start a job and wait for its end: (pieces, finished stats or None, failure or None)."""
    pieces, outcome = [], {}

    def token(job, piece):
        if job == number:
            pieces.append(piece)
            if on_token:
                on_token(job)

    def finished(job, stats):
        if job == number:
            outcome["stats"] = stats

    def failed(job, message, details):
        if job == number:
            outcome["failure"] = (message, details)

    client.token.connect(token)
    client.finished.connect(finished)
    client.failed.connect(failed)
    try:
        number = client.generate(req)
        qtbot.waitUntil(lambda: bool(outcome), timeout=LONG)
    finally:
        for signal, slot in ((client.token, token), (client.finished, finished),
                             (client.failed, failed)):
            signal.disconnect(slot)
    return pieces, outcome.get("stats"), outcome.get("failure")


def test_loaded_model_is_described(client):
    info = client.info
    assert info["is_default"] and info["base_model"]
    assert info["sees_images"] is False
    assert info["context_length"] == 2048
    assert info["name"].lower().startswith("gemma 3 270m")
    if client.worker.model.quantization == "int8":  # the weights as held, not the activations
        assert info["name"].endswith("on CPU, int8 weights")


def test_answer_streams_and_finishes_with_stats(qtbot, client):
    pieces, stats, failure = run(qtbot, client, request("The capital of France is"))
    assert failure is None
    assert pieces and "".join(pieces).strip()
    assert stats["decode_tokens"] >= 1 and stats["ttft_s"] > 0
    assert stats["stop_reason"] in ("max_tokens", "stop_token")


def test_stop_ends_the_answer_and_keeps_what_was_written(qtbot, client):
    pieces, stats, failure = run(qtbot, client, request("Once upon a time", 200),
                                 on_token=client.stop)
    assert failure is None
    assert stats["stop_reason"] == "cancelled"
    assert 1 <= len(pieces) <= 3  # the check comes between decode steps


def test_overflow_is_reported_with_numbers(qtbot, client):
    pieces, stats, failure = run(qtbot, client, request("word " * 2100))
    message, details = failure
    assert details["kind"] == "overflow" and not pieces
    assert details["needed"] > details["available"] and details["context_length"] == 2048
    assert "2,048" in message


def test_out_of_memory_is_a_clear_message_and_the_worker_goes_on(qtbot, client, monkeypatch):
    from engine.errors import OutOfMemory

    session = client.worker.session

    def no_memory(*args, **kwargs):
        raise OutOfMemory("Out of memory on cpu while reading the prompt. Try a shorter context.")

    monkeypatch.setattr(session, "prefill_to", no_memory)
    _, _, failure = run(qtbot, client, request("Hello"))
    assert failure[1]["kind"] == "oom" and "Out of memory" in failure[0]
    monkeypatch.undo()
    _, stats, failure = run(qtbot, client, request("Hello", 1))
    assert failure is None and stats["decode_tokens"] >= 1


def test_a_broken_model_file_is_refused_and_the_loaded_model_stays(qtbot, client, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with qtbot.waitSignal(client.load_failed, timeout=LONG) as blocker:
        client.load_model(str(broken), context_length=2048)
    assert "broken.gguf" in blocker.args[0]
    assert client.info is not None
    projector = tmp_path / "mmproj-broken.gguf"  # refused before the model in use goes, too
    projector.write_bytes(b"GGUF" + b"\x00" * 64)
    with qtbot.waitSignal(client.load_failed, timeout=LONG) as blocker:
        client.load_model(None, str(projector), context_length=2048)
    assert "mmproj-broken.gguf" in blocker.args[0] and client.info is not None
    _, stats, failure = run(qtbot, client, request("Hello", 1))
    assert failure is None and stats["decode_tokens"] >= 1


def test_a_model_folder_without_a_tokenizer_is_refused_and_the_loaded_model_stays(
        qtbot, client, tmp_path):
    from tests.tiny import build_text_model

    folder = build_text_model(tmp_path / "weights-only")  # config and weights, no tokenizer
    with qtbot.waitSignal(client.load_failed, timeout=LONG) as blocker:
        client.load_model(str(folder), context_length=2048)
    assert "weights-only has no tokenizer.model" in blocker.args[0]
    assert client.info["is_default"]
    _, stats, failure = run(qtbot, client, request("Hello", 1))
    assert failure is None and stats["decode_tokens"] >= 1


def test_a_load_stopped_part_way_leaves_no_model_and_says_so(qtbot, client, tmp_path):
    from engine.checkpoints import open_checkpoint
    from engine.default_model import ensure_default_model
    from tests.tiny import build_text_model

    folder = build_text_model(tmp_path / "slow-to-load")
    open_checkpoint(ensure_default_model()).tokenizer().save_model_file(
        folder / "tokenizer.model")
    loaded, progress, unloads = [], [], []
    client.loaded.connect(loaded.append)
    note_unload = lambda: unloads.append(len(progress))
    client.unloaded.connect(note_unload)
    stop_at_first = lambda fraction, _message: progress.append(fraction) or client.cancel_load()
    client.loading.connect(stop_at_first)
    try:
        client.load_model(str(folder), context_length=2048)
        qtbot.waitUntil(lambda: len(unloads) == 2, timeout=LONG)
        qtbot.wait(200)
        # the bundled model let go first, then, stopped part-way, no model
        assert unloads[0] == 0 and unloads[1] >= 1 and progress[0] < 1.0
        assert loaded == [] and client.info is None
    finally:
        client.loading.disconnect(stop_at_first)
        client.unloaded.disconnect(note_unload)
        client.loaded.disconnect(loaded.append)
        with qtbot.waitSignal(client.loaded, timeout=LONG):  # the bundled model, for the others
            client.load_model(context_length=2048)
    assert client.info["is_default"]


def test_counts_match_the_tokenizer(qtbot, client):
    from engine.chat import Turn, render_prompt

    turns = [{"role": "user", "text": "How tall is Mont Blanc?", "attachments": []},
             {"role": "model", "text": "About 4,806 metres.", "attachments": []}]
    with qtbot.waitSignal(client.counted, timeout=LONG) as blocker:
        client.count({"id": 5, "turns": turns, "system": "Answer briefly.",
                      "draft": {"role": "user", "text": "And Everest?"}})
    result = blocker.args[0]
    tokenizer = client.worker.model.tokenizer
    expected = render_prompt(tokenizer, [Turn("user", "How tall is Mont Blanc?"),
                                         Turn("model", "About 4,806 metres.")],
                             system="Answer briefly.")
    assert result["id"] == 5 and result["context_length"] == 2048
    assert abs(result["history"] - len(expected)) <= 2  # the system text is counted on its own
    assert len(result["per_turn"]) == 2 and 3 <= result["draft"] <= 8


def test_attachments_are_measured(qtbot, client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("The meeting moved to Thursday at ten.\n" * 20)
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(1, str(notes), "document", False)
    first = blocker.args[1]["token_cost"]
    assert blocker.args[0] == 1 and 150 < first < 400
    notes.write_text("The meeting moved to Thursday at ten.\n" * 40)  # edited after attaching
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(1, str(notes), "document", False)
    assert blocker.args[1]["token_cost"] > first + 100  # read again, not the old text
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(2, picture(tmp_path / "p.png"), "image", False)
    assert blocker.args[1]["token_cost"] == 260
    assert "cannot see" in blocker.args[1]["note"]  # the 270M is text only
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture at all")
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(3, str(junk), "image", False)
    assert "junk.png" in blocker.args[1]["error"]
    from app.attachments import PendingAttachment

    heic = tmp_path / "photo.heic"  # an iPhone's photo: a picture, refused by name
    heic.write_bytes(b"\0\0\0\x18ftypheic" + bytes(40))
    assert PendingAttachment.from_path(heic).kind == "image"
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(4, str(heic), "image", False)
    assert "a HEIC/HEIF photo" in blocker.args[1]["error"]
    assert "convert it to PNG or JPEG" in blocker.args[1]["error"]


def test_an_unexpected_failure_while_measuring_is_answered_not_dropped(qtbot, client,
                                                                       tmp_path, monkeypatch):
    def broken(*_args):
        raise MemoryError("no room for the text")

    monkeypatch.setattr(client._counting(), "measure", broken)
    monkeypatch.setattr(client._counting(), "first_part", broken)
    with qtbot.waitSignal(client.measured, timeout=LONG) as blocker:
        client.measure(9, str(tmp_path / "huge.txt"), "document", False)
    assert blocker.args == [9, {"error": "It could not be read: MemoryError: no room for the "
                                         "text"}]
    with qtbot.waitSignal(client.document_ready, timeout=LONG) as blocker:
        job = client.first_part(str(tmp_path / "huge.txt"), 500)
    assert blocker.args == [job, {"error": "MemoryError: no room for the text"}]


def test_prompts_follow_gemma_turns(client, tmp_path):
    from app.worker_prompts import alternating, build_prompt

    model = client.worker.model
    shot = picture(tmp_path / "shot.png")
    turns = [{"role": "user", "text": "Look", "attachments": [
                {"kind": "image", "path": shot, "name": "shot.png"}]},
             {"role": "model", "text": "", "attachments": []},  # failed before a word
             {"role": "user", "text": "Hello?", "attachments": []},
             {"role": "model", "text": "Hi, I am", "attachments": []}]
    assert [t["role"] for t in alternating(turns)] == ["user", "model"]
    ids, pixels = build_prompt(model, {"turns": turns, "continue_last": True})
    text = model.tokenizer.decode(ids)
    assert pixels is None and "shot.png" in text and "cannot see it" in text
    assert text.endswith("Hi, I am") and "Hello?" in text


def test_the_first_part_of_a_long_document_fits_its_budget(qtbot, client, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text("".join(f"Line {i}: the quarterly figures went up again.\n"
                            for i in range(1, 801)))
    with qtbot.waitSignal(client.document_ready, timeout=LONG) as blocker:
        client.first_part(str(long), 500)
    result = blocker.args[1]
    assert result["name"].startswith("long.txt (lines 1-") and "of 800" in result["coverage"]
    assert result["text"].startswith("Line 1:")
    assert len(client.worker.model.tokenizer.encode(result["text"])) <= 500


def test_model_scan_lists_the_bundled_model_with_its_needs(qtbot, client, tmp_path):
    with qtbot.waitSignal(client.models_found, timeout=LONG) as blocker:
        client.discover([str(tmp_path)], "cpu")
    bundled = blocker.args[0][0]
    assert bundled["origin"] == "Bundled" and bundled["path"] == "" and not bundled["sees_images"]
    assert 200_000_000 < bundled["params"] < 300_000_000 and bundled["device"] == "cpu"
    assert bundled["memory"] > bundled["params"] * 4  # fp32 weights plus the cache
    assert 0 < bundled["max_context"] <= bundled["model_max_context"] == 32768


def test_a_chat_summary_reports_reading_progress(qtbot, client):
    progress = []
    client.task_progress.connect(lambda job, fraction, text: progress.append((job, fraction,
                                                                              text)))
    turns = [{"role": ("user", "model")[i % 2], "text": f"Point {i}: the budget " * 60,
              "attachments": []} for i in range(6)]
    with qtbot.waitSignal(client.summary_ready, timeout=LONG) as blocker:
        job = client.summarize({"turns": turns})
    assert blocker.args[0] == job and blocker.args[1]
    mine = [(fraction, text) for number, fraction, text in progress if number == job]
    assert {text for _f, text in mine} == {"reading the chat"}
    fractions = [f for f, _t in mine]
    assert len(fractions) >= 3 and fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_document_too_long_for_the_context_is_summarised_in_sections(qtbot, client,
                                                                      tmp_path):
    long = tmp_path / "minutes.txt"
    long.write_text("\n\n".join(f"Item {i}. The council voted on the harbour budget, item {i}."
                                f" {'The treasurer read the figures aloud. ' * 12}"
                                for i in range(1, 41)))
    progress = []
    client.task_progress.connect(lambda job, fraction, text: progress.append((job, fraction,
                                                                              text)))
    with qtbot.waitSignal(client.document_ready, timeout=LONG) as blocker:
        job = client.summarize_document(str(long))
    result = blocker.args[1]
    assert blocker.args[0] == job and "error" not in result
    assert result["name"] == "minutes.txt (summary of lines 1-79 of 79).md"
    assert result["text"].startswith("# Summary of minutes.txt")
    mine = [(fraction, text) for number, fraction, text in progress if number == job]
    texts = list(dict.fromkeys(text for _f, text in mine))
    assert texts[0].startswith("section 1 of ") and texts[-1].startswith("combining")
    fractions = [f for f, _t in mine]
    assert fractions == sorted(fractions) and fractions[-1] < 1
    assert len(fractions) > len(texts)  # the bar moves while a section is being read
