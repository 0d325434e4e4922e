"""GGUF files written here from a tiny HF checkpoint: names, +1 norms, quant types, errors."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import engine
from engine.checkpoints.dequant import dequantize
from engine.errors import ModelLoadError
from tests import tiny

HF_TO_GGUF = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def gguf_name(hf: str) -> str:
    hf = hf.removeprefix("model.").removesuffix(".weight")
    if hf == "embed_tokens":
        return "token_embd.weight"
    if hf == "norm":
        return "output_norm.weight"
    _, layer, part = hf.split(".", 2)
    return f"blk.{layer}.{HF_TO_GGUF[part]}.weight"


def write_gguf(checkpoint, path, arch="gemma3", quant=None):
    """What llama.cpp's converter does: norms get +1, Q/K are not permuted (NeoX RoPE)."""
    config = engine.load(checkpoint, dtype="float32").config.text_config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_sliding_window(config.sliding_window)
    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(config.rope_scaling_factor)
    for name, tensor in load_file(checkpoint / "model.safetensors").items():
        values = tensor.float().numpy()
        if name.endswith("norm.weight"):
            values = values + 1.0
        if quant is not None and values.ndim == 2:
            writer.add_tensor(gguf_name(name), gguf.quants.quantize(values, quant),
                              raw_dtype=quant)
        else:
            writer.add_tensor(gguf_name(name), values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """GGUF cannot store query_pre_attn_scalar (llama.cpp derives it), so it equals head_dim."""
    return tiny.build_text_model(tmp_path_factory.mktemp("gguf_src"), query_pre_attn_scalar=32)


@pytest.fixture(scope="module")
def reference(checkpoint):
    from transformers import Gemma3ForCausalLM

    return Gemma3ForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


def test_gguf_logits_equal_the_hf_checkpoint(checkpoint, reference, tmp_path):
    model = engine.load(write_gguf(checkpoint, tmp_path / "tiny.gguf"), dtype="float32")
    assert model.config.text_config.rope_scaling_factor == 8.0
    assert model.config.text_config.rope_local_base_freq == 10_000.0  # not stored in GGUF
    ids = list(range(4, 64))
    with torch.no_grad():
        ref = reference(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - ref).abs().max() < 1e-4


def test_quantised_gguf_stays_close(checkpoint, reference, tmp_path):
    q8 = gguf.GGMLQuantizationType.Q8_0
    path = write_gguf(checkpoint, tmp_path / "q8.gguf", quant=q8)
    model = engine.load(path, dtype="float32")
    ids = list(range(4, 40))
    with torch.no_grad():
        ref = reference(torch.tensor([ids])).logits[0]
    assert (model.logits(ids) - ref).abs().max() < 0.05


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_dequantisation_equals_gguf_reference(qtype):
    kind = gguf.GGMLQuantizationType[qtype]
    values = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
    packed = gguf.quants.quantize(values, kind)
    expected = gguf.quants.dequantize(packed, kind)
    assert torch.equal(dequantize(packed, int(kind), (8, 256)), torch.from_numpy(expected))


def test_k_quants_equal_gguf_reference_on_random_blocks():
    rng = np.random.default_rng(1)
    for kind, scale_offsets in [("Q4_K", [0, 2]), ("Q5_K", [0, 2]), ("Q6_K", [208])]:
        qtype = gguf.GGMLQuantizationType[kind]
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (16, size), dtype=np.uint8)
        for offset in scale_offsets:  # finite fp16 scales
            raw[:, offset:offset + 2] = np.float16(rng.standard_normal(16) * 0.1).view(
                np.uint8).reshape(16, 2)
        expected = gguf.quants.dequantize(raw, qtype).reshape(16 * block)
        ours = dequantize(raw.reshape(-1), int(qtype), (16 * block,))
        assert torch.equal(ours, torch.from_numpy(expected)), kind


def test_truncated_and_foreign_gguf_files_are_named(checkpoint, tmp_path):
    path = write_gguf(checkpoint, tmp_path / "cut.gguf")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="cut.gguf.*truncated"):
        engine.load(path, dtype="float32")
    llama = write_gguf(checkpoint, tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(ModelLoadError, match="architecture 'llama' is not supported"):
        engine.load(llama, dtype="float32")


def test_checkpoints_without_a_tokenizer_are_refused_for_text_by_name(checkpoint, tmp_path):
    from engine.checkpoints import open_checkpoint
    from engine.cli import main

    gguf_file = write_gguf(checkpoint, tmp_path / "bare.gguf")  # weights, no tokenizer.ggml.*
    with pytest.raises(ModelLoadError, match=r"bare.gguf holds no tokenizer"):
        open_checkpoint(gguf_file).require_tokenizer()
    with pytest.raises(ModelLoadError, match=r"gguf_src\d* has no tokenizer.model"):
        open_checkpoint(checkpoint).require_tokenizer()  # the folder of tiny weights
    assert main(["generate", "--prompt", "Hi", "--model", str(gguf_file)]) == 2
    from engine.default_model import ensure_default_model

    bundled = ensure_default_model()
    assert open_checkpoint(bundled).require_tokenizer().path == bundled
