"""Finding Gemma 3 checkpoints on disk: HF cache, LM Studio, Ollama, user folders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from gguf import GGUFWriter

from engine.discovery import discover, gguf_metadata, scan_folder

GEMMA3_TEXT = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
               "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
               "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
               "vocab_size": 262144, "max_position_embeddings": 32768}


def write_gguf(path, arch: str = "gemma3", name: str = "Gemma 3 1B It", vocab: int = 5):
    writer = GGUFWriter(str(path), arch)
    writer.add_name(name)
    for key, value in (("block_count", 26), ("embedding_length", 1152),
                       ("feed_forward_length", 6912), ("attention.head_count", 4),
                       ("attention.head_count_kv", 1), ("context_length", 32768)):
        writer.add_uint32(f"{arch}.{key}", value)
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def hf_folder(folder, config=GEMMA3_TEXT, weights=("model.safetensors",)):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    for name in weights:
        (folder / name).write_bytes(b"\0" * 1000)
    return folder


def test_hf_cache_lm_studio_and_user_folders(tmp_path):
    home = tmp_path / "home"
    snapshot = home / ".cache/huggingface/hub/models--google--gemma-3-270m-it/snapshots/abc"
    hf_folder(snapshot, weights=("model-00001-of-00002.safetensors",
                                 "model-00002-of-00002.safetensors"))
    hf_folder(home / ".cache/huggingface/hub/models--meta--llama/snapshots/x",
              {"model_type": "llama"})
    studio = home / ".lmstudio/models/lmstudio-community/gemma-3-4b-it-GGUF"
    studio.mkdir(parents=True)
    write_gguf(studio / "gemma-3-4b-it-Q4_K_M.gguf", name="Gemma 3 4b It")
    write_gguf(studio / "mmproj-model-f16.gguf", arch="clip")
    mine = tmp_path / "mine/deep/er"
    mine.mkdir(parents=True)
    write_gguf(mine / "gemma.gguf")
    write_gguf(mine / "other.gguf", arch="llama")
    (mine / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")

    found = discover([str(tmp_path / "mine")], environ={}, home=home)
    by_name = {m.name: m for m in found}
    assert set(by_name) == {"google/gemma-3-270m-it", "Gemma 3 4b It", "Gemma 3 1B It"}
    hf = by_name["google/gemma-3-270m-it"]
    assert hf.origin == "Hugging Face cache" and hf.kind == "hf" and hf.size == 2000
    assert not hf.sees_images and hf.config.text_config.num_hidden_layers == 18
    studio_model = by_name["Gemma 3 4b It"]
    assert studio_model.origin == "LM Studio" and studio_model.sees_images
    assert studio_model.mmproj.name == "mmproj-model-f16.gguf"
    assert by_name["Gemma 3 1B It"].origin == "Folder"
    assert by_name["Gemma 3 1B It"].config.text_config.hidden_size == 1152


def test_ollama_manifests_point_at_blobs(tmp_path):
    models = tmp_path / "ollama"
    blobs = models / "blobs"
    blobs.mkdir(parents=True)
    write_gguf(blobs / "sha256-aaa")
    (blobs / "sha256-bbb").write_bytes(b"projector")
    manifest = models / "manifests/registry.ollama.ai/library/gemma3/1b"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:aaa"},
        {"mediaType": "application/vnd.ollama.image.projector", "digest": "sha256:bbb"}]}))
    found = discover(environ={"OLLAMA_MODELS": str(models)}, home=tmp_path / "nohome")
    assert [m.name for m in found] == ["gemma3:1b"]
    assert found[0].origin == "Ollama" and found[0].mmproj == blobs / "sha256-bbb"


def test_the_same_model_is_listed_once_and_depth_is_limited(tmp_path):
    model = write_gguf(tmp_path / "a.gguf")
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(8)])
    deep.mkdir(parents=True)
    write_gguf(deep / "too-deep.gguf")
    found = discover([str(tmp_path), str(tmp_path)], environ={}, home=tmp_path / "nohome")
    assert [m.path for m in found] == [model]
    assert scan_folder(tmp_path / "missing", "Folder") == []


def test_metadata_is_read_without_decoding_the_vocabulary(tmp_path):
    meta = gguf_metadata(write_gguf(tmp_path / "m.gguf", vocab=50_000))
    assert meta["general.architecture"] == "gemma3"
    assert len(meta["tokenizer.ggml.tokens"]) == 50_000
    assert gguf_metadata(tmp_path / "nothing.gguf") is None


def test_discovery_does_not_import_torch():
    code = "import sys, engine.discovery; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
