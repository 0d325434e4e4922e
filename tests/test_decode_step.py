"""The fused one-token decode step (engine/quant_step.py) and its kernels (kernels/step.c)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import engine
from engine import quant
from engine.kernels import build
from engine.text_model import RMSNorm, apply_rotary
from tests.test_quant import simd_variants


@pytest.fixture(scope="module", params=sorted(simd_variants()))
def lib(request, tmp_path_factory):
    target = tmp_path_factory.mktemp("step") / "step.so"
    assert build.build_library(build.compiler(), simd_variants()[request.param], target)
    return build.open_library(target)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def ptr(tensor):
    return tensor.data_ptr()


def test_norms_rope_and_gelu_equal_the_model_code(lib):
    norm = RMSNorm(96, 1e-6)
    norm.weight.data = randn(96, seed=1)
    x = randn(96, seed=2) * 30
    out = torch.empty(96)
    lib.step_rmsnorm(ptr(x), 1, 96, ptr(norm.weight), 1e-6, ptr(out))
    assert torch.allclose(out, norm(x), rtol=1e-5, atol=1e-6)
    residual = randn(96, seed=3)
    expected = residual + norm(x)
    lib.step_rmsnorm_add(ptr(x), 96, ptr(norm.weight), 1e-6, ptr(residual))
    assert torch.allclose(residual, expected, rtol=1e-5, atol=1e-5)

    heads = randn(3, 80, seed=4) * 5  # 80: not a multiple of any SIMD width
    head_norm = RMSNorm(80, 1e-6)
    head_norm.weight.data = randn(80, seed=5)
    angles = torch.cat([randn(40, seed=6)] * 2) * 3
    cos, sin = angles.cos(), angles.sin()
    expected = apply_rotary(head_norm(heads), cos, sin)
    lib.step_head_norm_rope(ptr(heads), 3, 80, ptr(head_norm.weight), 1e-6, ptr(cos), ptr(sin))
    assert torch.allclose(heads, expected, rtol=1e-5, atol=1e-5)

    gate_up = torch.cat([torch.linspace(-120, 120, 1001), randn(1001, seed=7)])
    out = torch.empty(1001)
    lib.step_gelu_mul(ptr(gate_up), 1001, ptr(out))
    expected = F.gelu(gate_up[:1001], approximate="tanh") * gate_up[1001:]
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("keys, dim, n_kv, group",
                         [(7, 32, 2, 2), (1300, 256, 1, 4), (600, 80, 2, 3)])
def test_attention_equals_sdpa(lib, keys, dim, n_kv, group):
    slots = keys + 50  # the cache buffer is longer than what is attended
    q = randn(n_kv, group, dim, seed=1)
    k, v = randn(n_kv, slots, dim, seed=2), randn(n_kv, slots, dim, seed=3)
    positions = torch.arange(keys) + 100  # the slots' positions, as a ring records them
    positions[keys // 5: keys // 2] = -1  # empty slots: a run longer than one thread's share
    oldest = 100 + keys // 10  # and the first tenth slid out of the window
    allowed = positions >= oldest
    for masked in (False, True):
        out = torch.empty(n_kv, group, dim)
        assert lib.step_attention(ptr(q), ptr(k), ptr(v), n_kv, group, dim, keys, slots,
                                  ptr(positions) if masked else None, oldest, 0.1, ptr(out)) == 0
        expected = F.scaled_dot_product_attention(
            q[None], k[None, :, :keys], v[None, :, :keys], scale=0.1,
            attn_mask=allowed.view(1, 1, 1, keys) if masked else None)[0]
        assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_attention_refuses_a_group_it_cannot_hold(lib):
    q, kv, out = torch.zeros(32, 8), torch.zeros(4, 8), torch.zeros(32, 8)
    assert lib.step_attention(ptr(q), ptr(kv), ptr(kv), 1, 32, 8, 4, 4, None, 0, 1.0,
                              ptr(out)) == -1


def test_fused_steps_equal_the_module_steps(tiny_text_checkpoint):
    """Past the window (16) so the rings wrap and the local layers' masks bite."""
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    quant.quantize_for_inference(model, "int8")
    fused = model.text.one_token
    assert fused is not None
    ids = torch.randint(3, 1000, (37,), generator=torch.Generator().manual_seed(8)).tolist()
    sessions = [model.new_session(context_length=256, chunk_size=8) for _ in range(2)]
    for session in sessions:
        session.prefill(ids)
    for token in torch.randint(3, 1000, (40,), generator=torch.Generator().manual_seed(9)):
        logits = []
        for session, one_token in zip(sessions, (fused, None)):
            model.text.one_token = one_token
            session._step(int(token))
            logits.append(session._next_logits)
        assert torch.allclose(*logits, rtol=1e-4, atol=1e-4)
    model.text.one_token = fused
    greedy = list(sessions[0].generate_ids(12))
    model.text.one_token = None
    assert greedy == list(sessions[1].generate_ids(12))


def test_a_token_outside_the_table_is_refused_before_anything_is_written(tiny_text_checkpoint):
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    quant.quantize_for_inference(model, "int8")
    session = model.new_session(context_length=64)
    session.prefill([5, 6, 7])
    before = session.cache.snapshot()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        session.prefill([model.text.embed_tokens.matrix.rows])
    assert session.ids == [5, 6, 7] and session.cache.length == before["length"]
    assert torch.equal(session.cache.slot_pos, before["slot_pos"])
    session.prefill([8])  # and the session goes on
    assert session.ids == [5, 6, 7, 8] and session._next_logits is not None


def test_only_int8_on_the_cpu_takes_the_fused_step(tiny_text_checkpoint):
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    assert model.text.one_token is None
    quant.quantize_for_inference(model, "bf16")
    assert model.text.one_token is None


def test_two_sessions_taking_turns_each_get_their_own_cache(tiny_text_checkpoint):
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    quant.quantize_for_inference(model, "int8")
    fused = model.text.one_token
    prompts = [torch.randint(3, 1000, (20,), generator=torch.Generator().manual_seed(s)).tolist()
               for s in (10, 11)]
    turns = [model.new_session(context_length=128) for _ in prompts]
    alone = [model.new_session(context_length=128) for _ in prompts]
    for session, ids in zip(turns + alone, prompts + prompts):
        session.prefill(ids)
    for token in range(100, 110):
        model.text.one_token = fused
        for session in turns:  # alternate: the decoder's cache addresses must follow
            session._step(token)
        model.text.one_token = None
        for session in alone:
            session._step(token)
        for a, b in zip(turns, alone):
            assert torch.allclose(a._next_logits, b._next_logits, rtol=1e-4, atol=1e-4)
