"""Choosing the next token: greedy, temperature, top-k, top-p, min-p, seeds."""

from __future__ import annotations

import math
from collections import Counter

import torch

from engine.generate import CANDIDATE_WINDOW, Sampling, candidates, choose_token

VOCAB = 4096


def logits_with(scores: dict[int, float]) -> torch.Tensor:
    logits = torch.full((VOCAB,), -50.0)
    for token, score in scores.items():
        logits[token] = score
    return logits


def draws(logits, sampling, n=2000, seed=0, forbidden=frozenset()) -> Counter:
    generator = torch.Generator().manual_seed(seed)
    return Counter(int(choose_token(logits, sampling, generator, forbidden)) for _ in range(n))


def test_greedy_is_the_argmax_as_an_int():
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(1))
    token = choose_token(logits, None)
    assert isinstance(token, int) and token == int(torch.argmax(logits))
    assert choose_token(logits, Sampling(temperature=0)) == token


def test_forbidden_ids_are_never_chosen_and_their_mass_goes_to_the_rest():
    logits = logits_with({5: 9.0, 7: 0.0, 9: math.log(3.0)})
    forbidden = frozenset({3, 5})
    assert choose_token(logits, None) == 5
    assert choose_token(logits, None, forbidden=forbidden) == 9
    assert choose_token(logits_with({7: 1.0}), None, forbidden=forbidden) == 7  # none near
    counts = draws(logits, Sampling(top_k=0, top_p=1.0), forbidden=forbidden)
    assert set(counts) == {7, 9}
    assert abs(counts[9] / 2000 - 0.75) < 0.03
    # far below the forbidden best: no candidates until the mask is applied
    assert set(draws(logits_with({5: 60.0, 7: 0.0}), Sampling(), 50, forbidden=forbidden)) == {7}


def test_probabilities_follow_the_softmax_at_the_temperature():
    logits = logits_with({7: 0.0, 9: math.log(3.0), 11: -1.0})
    counts = draws(logits, Sampling(temperature=1.0, top_k=0, top_p=1.0))
    total = 1 + 3 + math.exp(-1)
    for token, weight in ((7, 1), (9, 3), (11, math.exp(-1))):
        assert abs(counts[token] / 2000 - weight / total) < 0.03
    hot = draws(logits, Sampling(temperature=2.0, top_k=0, top_p=1.0))
    assert hot[7] / hot[9] > counts[7] / counts[9]  # a higher temperature flattens


def test_top_k_top_p_and_min_p_cut_the_tail():
    logits = logits_with({1: 2.0, 2: 1.5, 3: 1.0, 4: 0.5})
    assert set(draws(logits, Sampling(top_k=2, top_p=1.0))) == {1, 2}
    # probabilities 0.455, 0.276, 0.167, 0.102: a token is kept while the mass ranked above it
    # is under top_p
    assert set(draws(logits, Sampling(top_k=0, top_p=0.75))) == {1, 2, 3}
    assert set(draws(logits, Sampling(top_k=0, top_p=0.6))) == {1, 2}
    assert set(draws(logits, Sampling(top_k=0, top_p=0.3))) == {1}
    assert set(draws(logits, Sampling(top_k=0, top_p=1.0, min_p=0.5))) == {1, 2}


def test_a_seed_repeats_the_draws():
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(2)) * 3
    sampling = Sampling(seed=5)
    assert draws(logits, sampling, n=50, seed=5) == draws(logits, sampling, n=50, seed=5)


def test_candidates_are_the_best_within_the_window_best_first():
    logits = logits_with({5: 10.0, 6: 9.0, 7: 10.0 - CANDIDATE_WINDOW - 1})
    ids, values = candidates(logits, top_k=0)
    assert ids.tolist() == [5, 6] and values.tolist() == [10.0, 9.0]
    scores = torch.randn(VOCAB, generator=torch.Generator().manual_seed(3))
    ids, values = candidates(scores, top_k=64)
    assert torch.equal(ids, torch.topk(scores, 64).indices)
