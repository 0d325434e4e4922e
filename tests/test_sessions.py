"""Sessions: chunked prefill, the ring-buffer cache, prefix reuse, rollback, context limits."""

from __future__ import annotations

import threading

import pytest
import torch

import engine
from engine.config import ModelConfig, TextConfig, preset
from engine.errors import Cancelled, ContextOverflowError
from engine.kv_cache import attention_mask
from engine.memory import estimate, max_context_that_fits
from engine.model import Model
from engine.prefill import plan_chunks
from engine.text_model import TextModel


@pytest.fixture(scope="module")
def model(tiny_text_checkpoint):
    return engine.load(tiny_text_checkpoint, dtype="float32")


def prompt(n, seed=0):
    return torch.randint(3, 1000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("chunk", [1, 5, 16, 33, 512])
def test_chunked_prefill_matches_one_shot(model, chunk):
    ids = prompt(3 * model.config.text_config.sliding_window + 7)
    one_shot = model.logits(ids)
    session = model.new_session(context_length=256, chunk_size=chunk)
    session.prefill(ids)
    assert (session._next_logits - one_shot[-1]).abs().max() < 1e-4
    # and the decode steps after it agree with one-shot passes over the longer prompt
    generated = list(session.generate_ids(6))
    assert (session._next_logits - model.logits(ids + generated)[-1]).abs().max() < 1e-4


def test_greedy_tokens_match_a_fresh_session_after_rollback_past_the_window(model):
    ids = prompt(70, seed=3)
    session = model.new_session(context_length=256, chunk_size=8)
    session.prefill(ids[:40])
    list(session.generate_ids(30))  # overwrite the rings well past the rollback point
    session.prefill(ids[40:])
    session.truncate(25)  # more than a window (16) behind everything the rings hold
    assert session.n_tokens == 25
    rolled = list(session.generate_ids(12))
    fresh = model.new_session(context_length=256, chunk_size=8)
    fresh.prefill(ids[:25])
    assert rolled == list(fresh.generate_ids(12))


def test_rollback_without_a_snapshot_replays_from_the_start(model):
    session = model.new_session(context_length=256, chunk_size=4)
    ids = prompt(60, seed=4)
    session.prefill(ids)
    session._snapshots.clear()
    session.truncate(30)
    fresh = model.new_session(context_length=256, chunk_size=4)
    fresh.prefill(ids[:30])
    assert list(session.generate_ids(8)) == list(fresh.generate_ids(8))


def test_prefill_to_reuses_the_common_prefix(model):
    session = model.new_session(context_length=256)
    first = prompt(50, seed=5)
    assert session.prefill_to(first) == 0
    answer = list(session.generate_ids(5))
    follow_up = first + answer + prompt(10, seed=6)
    reused = session.prefill_to(follow_up)
    assert reused == len(first) + len(answer)
    assert session.last_stats.prompt_tokens == len(follow_up) - reused
    assert (session._next_logits - model.logits(follow_up)[-1]).abs().max() < 1e-4
    edited = first[:20] + prompt(7, seed=7)  # edit-and-resend from an earlier point
    assert session.prefill_to(edited) == 20
    assert (session._next_logits - model.logits(edited)[-1]).abs().max() < 1e-4


def test_prefill_reports_progress_and_can_be_cancelled(model):
    session = model.new_session(context_length=256, chunk_size=10)
    seen = []
    session.prefill(prompt(35), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 35), (20, 35), (30, 35), (35, 35)]
    cancel = threading.Event()

    def stop_after_first(done, total):
        cancel.set()

    with pytest.raises(Cancelled):
        session.prefill(prompt(30, seed=2), progress=stop_after_first, cancel=cancel)
    assert session.n_tokens == 45  # what was done stays consistent
    fresh = model.new_session(context_length=256, chunk_size=10)
    fresh.prefill(session.ids)
    assert list(session.generate_ids(4)) == list(fresh.generate_ids(4))


def test_a_request_that_cannot_fit_says_by_how_much(model):
    session = model.new_session(context_length=64)
    session.prefill(prompt(40))
    with pytest.raises(ContextOverflowError) as err:
        session.prefill(prompt(20), reserve=10)
    assert err.value.needed == 30 and err.value.available == 24 and err.value.overflow == 6
    assert "30" in str(err.value) and "24" in str(err.value) and "64" in str(err.value)
    assert session.n_tokens == 40


def test_generation_stops_when_the_context_is_full(model):
    session = model.new_session(context_length=48)
    session.prefill(prompt(40))
    tokens = list(session.generate_ids(100))
    assert session.n_tokens == 48 and session.last_stats.stop_reason in ("context_full",
                                                                          "stop_token")
    assert len(tokens) <= 9


def test_mask_table_for_a_window_of_four():
    q = torch.arange(8)
    mask = attention_mask(q, q, window=4)[0, 0]
    for i in range(8):
        for j in range(8):
            assert bool(mask[i, j]) == (i - 4 < j <= i)


def test_image_tokens_see_each_other_both_ways_but_never_later_images():
    q = torch.arange(8)
    blocks = torch.tensor([-1, 0, 0, 0, -1, 1, 1, -1])
    mask = attention_mask(q, q, None, blocks, blocks)[0, 0]
    assert mask[1, 3] and mask[3, 1]  # inside one image: both ways
    assert not mask[3, 5] and mask[5, 3]  # an image never sees a later one
    assert not mask[0, 1] and not mask[4, 5]  # text stays causal


def test_chunks_never_split_an_image_block():
    ids = [1] * 10 + [9] * 20 + [1] * 5 + [9] * 20 + [1] * 3
    chunks = plan_chunks(ids, 8, image_token_id=9)
    assert chunks[0] == (0, 8) and (10, 30) in chunks and (35, 55) in chunks
    assert chunks[-1][1] == len(ids)
    assert all(not (s < b < e) for _a, b in chunks for s, e in [(10, 30), (35, 55)])


def tiny_with_pattern(n_layers: int) -> Model:
    text = TextConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                      num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, sliding_window=64, max_position_embeddings=4096)
    torch.manual_seed(0)
    return Model(ModelConfig(text_config=text), TextModel(text).eval())


def test_session_allocates_exactly_its_estimate():
    model = tiny_with_pattern(34)  # the 4B's layer pattern: 5 global, 29 local
    for context, chunk in [(4096, 128), (100, 512), (2048, 1)]:
        session = model.new_session(context_length=context, chunk_size=chunk)
        expected = estimate(model.config, context, torch.float32, chunk=chunk)["kv_cache"]
        assert session.kv_bytes() == expected


def test_4b_kv_estimate_at_128k_tokens():
    config = preset("4b")
    chunk = 512
    kv = estimate(config, 131072, "bfloat16", chunk=chunk)["kv_cache"]
    per_layer_token = 2 * 4 * 256 * 2
    formula = per_layer_token * (5 * 131072 + 29 * min(131072, 1024 + chunk))
    assert abs(kv - formula) / formula < 0.02
    assert 2.5 * 2**30 < kv < 2.8 * 2**30  # about 2.6 GiB, not 17


def test_largest_context_that_fits():
    config = preset("4b")
    weights = estimate(config, 1024, "bfloat16")["weights"]
    assert max_context_that_fits(config, weights // 2, "bfloat16") == 0
    fits = max_context_that_fits(config, weights + 3 * 2**30, "bfloat16")
    assert 1024 <= fits < 131072
    assert estimate(config, fits, "bfloat16")["total"] <= weights + 3 * 2**30
    assert estimate(config, fits + 1024, "bfloat16")["total"] > weights + 3 * 2**30


def test_out_of_memory_becomes_a_clear_error_and_the_session_goes_on(model, monkeypatch):
    from engine.errors import OutOfMemory

    session = model.new_session(context_length=256)
    session.prefill(prompt(20))
    real = model.forward_chunk

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward_chunk", exhausted)
    with pytest.raises(OutOfMemory, match="Out of memory on cpu while reading the prompt"):
        session.prefill(prompt(30, seed=9))
    monkeypatch.setattr(model, "forward_chunk", real)
    session.truncate(20)
    assert session.n_tokens == 20 and len(list(session.generate_ids(3))) == 3


def test_regenerate_reuses_the_whole_prompt_even_after_a_long_answer(model):
    session = model.new_session(context_length=256, chunk_size=8)
    ids = prompt(40, seed=11)
    session.prefill_to(ids)
    first = list(session.generate_ids(40))  # longer than window + chunk: the rings wrap
    assert session.prefill_to(ids) == len(ids)  # regenerate: nothing to prefill again
    assert session.last_stats.prompt_tokens == 0
    assert list(session.generate_ids(40)) == first
