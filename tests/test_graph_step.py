"""The fixed-shape decode step CUDA graphs capture (engine/graph_step.py), held to the module
path: run eagerly on the CPU (everything but the capture itself), and on a machine with CUDA
also captured and replayed."""

from __future__ import annotations

import pytest
import torch

import engine
from engine import graph_step
from engine.graph_step import GraphDecoder

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
TOLERANCE = {"cpu": 1e-4, "cuda": 3e-2}  # fp32 against bf16, where kernels may round apart


@pytest.fixture(params=DEVICES)
def model(request, tiny_text_checkpoint, monkeypatch):
    """The tiny model with the step attached: eager on the CPU, captured in graphs on CUDA
    (on a machine that has one); buckets of 8, 16, 32 ... keys."""
    monkeypatch.setattr(graph_step, "DEVICES", {"cpu", "cuda"})
    monkeypatch.setattr(graph_step, "KEY_BUCKET_MIN", 8)
    model = engine.load(tiny_text_checkpoint, device=request.param,
                        dtype="float32" if request.param == "cpu" else "auto")
    assert isinstance(model.text.one_token, GraphDecoder)
    return model


def close(model, a: torch.Tensor, b: torch.Tensor) -> bool:
    tolerance = TOLERANCE[model.device.type]
    return torch.allclose(a, b, rtol=tolerance, atol=tolerance)


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(3, 1000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def step_both(model, sessions, token: int) -> list[torch.Tensor]:
    """The next logits of `token` through the graph step (first session) and the modules."""
    graph, logits = model.text.one_token, []
    for session, one_token in zip(sessions, (graph, None)):
        model.text.one_token = one_token
        session._step(token)
        logits.append(session._next_logits)
    model.text.one_token = graph
    return logits


def test_graph_steps_equal_the_module_steps(model):
    """From 13 to 60 tokens: four key buckets, and the rings (window 16) wrap."""
    sessions = [model.new_session(context_length=256, chunk_size=8) for _ in range(2)]
    for session in sessions:
        session.prefill(random_ids(13, seed=1))
    for token in random_ids(47, seed=2):
        assert close(model, *step_both(model, sessions, token))
    for session in sessions:  # back to a shorter bucket, whose slots past 20 hold old keys
        session.truncate(20)
    for token in random_ids(6, seed=3):
        assert close(model, *step_both(model, sessions, token))
    decoder = model.text.one_token
    if model.device.type == "cuda":  # captured, not fallen back to eager steps
        assert decoder.unavailable is None and decoder.describe().endswith("in CUDA graphs")
        return  # bf16 rounding may break a near tie: greedy runs are compared in fp32
    assert not decoder.capture
    graph = list(sessions[0].generate_ids(10))
    model.text.one_token = None
    assert graph == list(sessions[1].generate_ids(10))


def test_buckets_double_from_the_minimum_up_to_the_context(model):
    session = model.new_session(context_length=40)
    bucket = lambda start: GraphDecoder._bucket(session.cache, start)  # noqa: E731
    assert [bucket(s) for s in (0, 7, 8, 15, 16, 31, 32, 39)] == [8, 8, 16, 16, 32, 32, 40, 40]


def test_two_sessions_taking_turns_each_get_their_own_cache(model):
    turns = [model.new_session(context_length=64) for _ in range(2)]
    alone = [model.new_session(context_length=64) for _ in range(2)]
    for session, seed in zip(turns + alone, (4, 5, 4, 5)):
        session.prefill(random_ids(11, seed))
    for token in random_ids(8, seed=6):
        for a, b in zip(turns, alone):
            assert close(model, *step_both(model, [a, b], token))


def test_a_token_outside_the_table_is_refused_before_anything_is_written(model):
    session = model.new_session(context_length=64)
    session.prefill([5, 6, 7])
    before = session.cache.snapshot()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        session.prefill([model.config.text_config.vocab_size])
    assert session.ids == [5, 6, 7] and session.cache.length == before["length"]
    assert torch.equal(session.cache.slot_pos, before["slot_pos"])
    session.prefill([8])
    assert session.ids == [5, 6, 7, 8] and session._next_logits is not None


def test_the_step_is_attached_only_where_graphs_help(tiny_text_checkpoint):
    assert graph_step.DEVICES == {"cuda"}
    assert engine.load(tiny_text_checkpoint, dtype="float32").text.one_token is None
