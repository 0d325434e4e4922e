"""Our decoder against transformers on tiny random Gemma 3 checkpoints, in every save layout."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import engine
from engine.config import config_from_hf
from engine.errors import ModelLoadError
from tests import tiny


@pytest.fixture(scope="module")
def reference(tiny_text_checkpoint):
    from transformers import Gemma3ForCausalLM

    return Gemma3ForCausalLM.from_pretrained(tiny_text_checkpoint, dtype=torch.float32).eval()


def reference_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def relayout(src, dst, rename, shards=1):
    """Copy a checkpoint with its tensor names rewritten, optionally split into shards."""
    dst.mkdir()
    shutil.copy(src / "config.json", dst / "config.json")
    tensors = {rename(k): v for k, v in load_file(src / "model.safetensors").items()}
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        file = file if shards > 1 else "model.safetensors"
        save_file({n: tensors[n] for n in part}, dst / file)
        weight_map.update({n: file for n in part})
    if shards > 1:
        index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (dst / "model.safetensors.index.json").write_text(json.dumps(index))
    return dst


LAYOUTS = {
    "model.*": lambda k: k,
    "language_model.model.*": lambda k: "language_model." + k,
    "model.language_model.*": lambda k: k.replace("model.", "model.language_model.", 1),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_match_transformers_in_every_layout(layout, tiny_text_checkpoint, reference,
                                                   tmp_path):
    folder = relayout(tiny_text_checkpoint, tmp_path / "ckpt", LAYOUTS[layout],
                      shards=2 if layout != "model.*" else 1)
    model = engine.load(folder, dtype="float32")
    ids = torch.randint(0, 1000, (70,), generator=torch.Generator().manual_seed(1)).tolist()
    ours = model.logits(ids)
    assert ours.dtype == torch.float32 and ours.shape == (70, 1000)
    assert (ours - reference_logits(reference, ids)).abs().max() < 1e-4


def test_window_shorter_than_prompt_matters(tiny_text_checkpoint, reference):
    """The sliding window changes the answer: a model without it would not match."""
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    ids = list(range(3, 63))
    ours = model.logits(ids)
    model.config.text_config.sliding_window = 10_000
    unwindowed = model.logits(ids)
    ref = reference_logits(reference, ids)
    assert (ours - ref).abs().max() < 1e-4
    assert (unwindowed - ref).abs().max() > 1e-3


def test_both_config_key_generations_agree(tiny_text_checkpoint):
    new = json.loads((tiny_text_checkpoint / "config.json").read_text())
    old = {k: v for k, v in new.items() if k not in ("rope_parameters", "layer_types")}
    old.update(rope_theta=1e6, rope_local_base_freq=1e4, sliding_window_pattern=6,
               rope_scaling={"type": "linear", "factor": 8.0})
    a, b = config_from_hf(new).text_config, config_from_hf(old).text_config
    assert a.layer_types == b.layer_types
    assert (a.rope_theta, a.rope_local_base_freq, a.rope_scaling_factor) == (
        b.rope_theta, b.rope_local_base_freq, b.rope_scaling_factor) == (1e6, 1e4, 8.0)


def test_sparse_hub_config_gets_class_defaults():
    config = config_from_hf({"model_type": "gemma3", "text_config": {
        "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024}})
    text = config.text_config
    assert (text.vocab_size, text.num_attention_heads, text.num_key_value_heads) == (262208, 8, 4)
    assert text.layer_types[5] == "full_attention" and text.layer_types[33] == "sliding_attention"
    assert config.vision_config is None and config.image_token_index == 262144


def test_embedding_scale_is_rounded_to_the_weight_dtype():
    from engine.config import TextConfig
    from engine.text_model import TextModel

    model = TextModel(TextConfig(vocab_size=8, hidden_size=640, intermediate_size=8,
                                 num_hidden_layers=1, num_attention_heads=1,
                                 num_key_value_heads=1, head_dim=8))
    assert float(model.embed_scale) == pytest.approx(640**0.5, abs=1e-6)
    assert float(model.to(torch.bfloat16).embed_scale) == 25.25


def test_truncated_weights_name_the_file(tiny_text_checkpoint, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_text_checkpoint, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        engine.load(folder, dtype="float32")


def test_wrong_shape_and_missing_tensor_are_named(tiny_text_checkpoint, tmp_path):
    wrong = relayout(tiny_text_checkpoint, tmp_path / "wrong", lambda k: k)
    config = json.loads((wrong / "config.json").read_text())
    config["intermediate_size"] = 128
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="gate_proj.*shape"):
        engine.load(wrong, dtype="float32")
    missing = tmp_path / "missing"
    missing.mkdir()
    shutil.copy(tiny_text_checkpoint / "config.json", missing / "config.json")
    tensors = load_file(tiny_text_checkpoint / "model.safetensors")
    del tensors["model.layers.3.mlp.up_proj.weight"]
    save_file(tensors, missing / "model.safetensors")
    with pytest.raises(ModelLoadError, match="layers.3.mlp.up_proj.weight.*missing"):
        engine.load(missing, dtype="float32")


def test_not_a_model_gets_a_clear_error(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a model"):
        engine.load(text_file)
    with pytest.raises(ModelLoadError, match="no config.json"):
        engine.load(tmp_path)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(ModelLoadError, match="fake.gguf"):
        engine.load(fake)


def test_linear_rope_scaling_only_on_global_layers(tmp_path):
    """Changing the scaling factor changes the output only through the global layers."""
    plain = engine.load(tiny.build_text_model(tmp_path / "a", num_hidden_layers=5), dtype="float32")
    ids = list(range(5, 45))
    before = plain.logits(ids)
    plain.text.rope_global.inv_freq /= 3  # no global layer among the first five
    assert torch.equal(before, plain.logits(ids))
    plain.text.rope_local.inv_freq /= 3
    assert not torch.equal(before, plain.logits(ids))
