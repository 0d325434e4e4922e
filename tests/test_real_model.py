"""The real Gemma 3 270M (Q4_K_M GGUF) against transformers loading the same file."""

from __future__ import annotations

import pytest
import torch

import engine

TEXT = (
    "Gemma is a family of lightweight, state-of-the-art open models built from the same "
    "research and technology used to create the Gemini models. They are text-to-text, "
    "decoder-only large language models, available in English, with open weights. "
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
    "    return a\n\nLa Tour Eiffel est une tour de fer puddlé de 330 m de hauteur. "
    "東京は日本の首都です。 Numbers: 3.14159, 2,718, 1e-6. "
)


@pytest.fixture(scope="module")
def model(real_gguf):
    return engine.load(real_gguf, dtype="float32")


def prompt(model, n_tokens: int) -> list[int]:
    ids = [model.tokenizer.bos_id]
    while len(ids) < n_tokens:
        ids += model.tokenizer.encode(TEXT)
    return ids[:n_tokens]


def reference_logits(reference, ids, rows):
    with torch.no_grad():
        out = reference(torch.tensor([ids]), logits_to_keep=torch.tensor(rows))
    return out.logits[0].float()


@pytest.mark.parametrize("n_tokens", [40, 700, 1500])
def test_logits_match_transformers(model, reference_270m, n_tokens):
    ids = prompt(model, n_tokens)
    rows = sorted(set(range(0, n_tokens, max(1, n_tokens // 12))) | {n_tokens - 1})
    ours = model.logits(ids, rows=rows)
    assert (ours - reference_logits(reference_270m, ids, rows)).abs().max() < 1e-3


def test_64_greedy_tokens_identical(model, reference_270m):
    ids = [model.tokenizer.bos_id, *model.tokenizer.encode("The history of the bicycle")]
    with torch.no_grad():
        ref = reference_270m.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False,
                                      min_new_tokens=64)
    session = model.new_session(context_length=512)
    session.prefill(ids)
    ours = list(session.generate_ids(64))
    assert ours == ref[0, len(ids):].tolist()[: len(ours)]
    assert len(ours) == 64 or session.last_stats.stop_reason == "stop_token"


def test_8000_token_prompt_last_positions_match(model, reference_270m):
    ids = prompt(model, 8000)
    session = model.new_session(context_length=8192)
    session.prefill(ids[:-16])
    ours = []
    for token in ids[-16:]:
        session.prefill([token])
        ours.append(session._next_logits)
    ref = reference_logits(reference_270m, ids, list(range(8000 - 16, 8000)))
    assert (torch.stack(ours) - ref).abs().max() < 1e-3


@pytest.mark.parametrize("chunk", [1, 100, 512])
def test_chunked_prefill_matches_one_shot(model, chunk):
    ids = prompt(model, 3 * 512 + 20)
    one_shot = model.logits(ids, rows=[len(ids) - 1])[0]
    session = model.new_session(context_length=2048, chunk_size=max(chunk, 512))
    if chunk == 1:  # one token at a time through the last hundred
        session.prefill(ids[:-100])
        session.chunk_size = 1  # smaller chunks than the ring was sized for are fine
        session.prefill(ids[-100:])
    else:
        session.prefill(ids)
    assert (session._next_logits - one_shot).abs().max() < 1e-4
