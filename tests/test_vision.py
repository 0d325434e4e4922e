"""The vision path against transformers on a tiny random Gemma3ForConditionalGeneration: the
tower alone, every HF name layout, mmproj GGUF files, and logits of prompts with images."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import engine
from engine.chat import ImagePart, Turn, render_prompt
from engine.checkpoints.gguf_file import GGUFFile
from engine.checkpoints.mmproj import read_mmproj
from engine.config import config_from_hf
from engine.errors import EngineError, ModelLoadError
from engine.images import preprocess
from engine.tokenizer import Tokenizer
from engine.vision_model import VisionTower, canonical_vision_name, load_vision_weights

IMAGE, BOI = 262144, 255999


@pytest.fixture(scope="module")
def checkpoint(tiny_multimodal_checkpoint):
    return tiny_multimodal_checkpoint


@pytest.fixture(scope="module")
def reference(checkpoint):
    from transformers import Gemma3ForConditionalGeneration

    return Gemma3ForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def config(checkpoint):
    return config_from_hf(json.loads((checkpoint / "config.json").read_text()))


@pytest.fixture(scope="module")
def hf_tensors(checkpoint):
    return load_file(checkpoint / "model.safetensors")


def new_tower(config):
    return VisionTower(config.vision_config, config.text_config.hidden_size,
                       config.mm_tokens_per_image)


def reference_features(reference, pixels):
    with torch.no_grad():
        return reference.model.get_image_features(pixels).pooler_output


def pictures(*sizes):
    rng = np.random.default_rng(sum(w * h for w, h in sizes))
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def test_tower_matches_transformers(config, hf_tensors, reference):
    tower = load_vision_weights(new_tower(config), hf_tensors.items())
    pixels = torch.rand(2, 3, 896, 896) * 2 - 1
    features = tower(pixels)
    assert features.shape == (2, 256, config.text_config.hidden_size)
    expected = reference_features(reference, pixels)
    assert expected.abs().mean() > 0.1  # the oracle's output is not trivially zero
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)


LAYOUTS = {
    "hub originals": ("vision_tower.vision_model.", "multi_modal_projector."),
    "model.* with vision_model": ("model.vision_tower.vision_model.",
                                  "model.multi_modal_projector."),
    "transformers 5": ("vision_tower.", "multi_modal_projector."),
    "model.* without vision_model": ("model.vision_tower.", "model.multi_modal_projector."),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_hf_layout_loads_the_same_tower(layout, config, hf_tensors):
    vision, projector = LAYOUTS[layout]
    canonical = {canonical_vision_name(k): v for k, v in hf_tensors.items()}
    renamed = {}
    for name, tensor in canonical.items():
        if name is not None:
            head, _, rest = name.partition(".")
            renamed[(vision if head == "vision_tower" else projector) + rest] = tensor
    tower = load_vision_weights(new_tower(config), renamed.items())
    expected = load_vision_weights(new_tower(config), hf_tensors.items()).state_dict()
    for name, tensor in tower.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_names_and_the_plus_one(config, hf_tensors):
    assert canonical_vision_name("language_model.model.layers.0.mlp.up_proj.weight") is None
    assert canonical_vision_name("model.language_model.norm.weight") is None
    assert canonical_vision_name("vision_tower.vision_model.head.probe") is None
    assert (canonical_vision_name("model.vision_tower.vision_model.post_layernorm.bias")
            == "vision_tower.post_layernorm.bias")
    tower = load_vision_weights(new_tower(config), hf_tensors.items())
    hf_norm = hf_tensors["multi_modal_projector.mm_soft_emb_norm.weight"]
    assert torch.equal(tower.multi_modal_projector.mm_soft_emb_norm.weight, hf_norm + 1)
    hf_ln = hf_tensors["vision_tower.post_layernorm.weight"]  # SigLIP LayerNorms stay as they are
    assert torch.equal(tower.vision_tower.post_layernorm.weight, hf_ln)


def test_missing_or_misshapen_weights_are_named(config, hf_tensors):
    partial = {k: v for k, v in hf_tensors.items() if "layers.1.mlp.fc2" not in k}
    with pytest.raises(ModelLoadError, match="missing"):
        load_vision_weights(new_tower(config), partial.items())
    bad = dict(hf_tensors, **{"vision_tower.post_layernorm.bias": torch.zeros(7)})
    with pytest.raises(ModelLoadError, match=r"post_layernorm.bias' has shape \(7,\)"):
        load_vision_weights(new_tower(config), bad.items())
    with pytest.raises(ValueError, match=r"\[N, 3, 896, 896\]"):
        new_tower(config)(torch.zeros(1, 3, 224, 224))


# -- whole prompts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(real_gguf, tmp_path_factory):
    return Tokenizer.from_gguf(GGUFFile(real_gguf), cache_dir=tmp_path_factory.mktemp("tok"))


def prompt(tokenizer, crops_per_image: list[int]) -> list[int]:
    """A chat with each picture (pan-and-scan crops and HF's sentence too) in its first turn."""
    parts: list = ["Look at these."]
    for n, crops in enumerate(crops_per_image):
        parts += [ImagePart(crops), f"That was picture {n + 1}."]
    turns = [Turn("user", parts), Turn("model", "I see them."), Turn("user", "Describe them.")]
    return render_prompt(tokenizer, turns)


def compare_logits(model, reference, ids, pixels):
    assert sum(t == IMAGE for t in ids) == 256 * len(pixels)
    starts = [i for i, t in enumerate(ids) if t == IMAGE and ids[i - 1] == BOI]
    rows = sorted({*range(len(ids) - 24, len(ids))} | {s + k for s in starts for k in (0, 130)})
    ours = model.logits(ids, pixels, rows=rows)
    ids_t = torch.tensor([ids])
    with torch.no_grad():
        theirs = reference(input_ids=ids_t, pixel_values=pixels, logits_to_keep=torch.tensor(rows),
                           token_type_ids=(ids_t == IMAGE).long()).logits[0]
    assert (ours - theirs).abs().max() < 1e-4


@pytest.fixture(scope="module")
def model(checkpoint):
    return engine.load(checkpoint, device="cpu", dtype="float32")


def test_one_image_logits_match_transformers(model, reference, tokenizer):
    pixels, crops = preprocess(pictures((640, 640))[0], pan_and_scan=True)
    assert crops == 0
    compare_logits(model, reference, prompt(tokenizer, [0]), pixels)


def test_two_images_logits_match_transformers(model, reference, tokenizer):
    rows = [preprocess(image, pan_and_scan=False)[0] for image in pictures((500, 400), (64, 90))]
    ids = prompt(tokenizer, [0, 0])
    assert len(ids) - ids.index(IMAGE) > 300  # the local layers' window cuts the first image
    compare_logits(model, reference, ids, torch.cat(rows))


def test_pan_and_scan_logits_match_transformers(model, reference, tokenizer):
    pixels, crops = preprocess(pictures((1800, 600))[0], pan_and_scan=True)
    assert crops == 3
    compare_logits(model, reference, prompt(tokenizer, [crops]), pixels)


def test_chunked_prefill_across_turns_matches_transformers(model, reference, tokenizer):
    """Chunks shorter than an image block, a window shorter than the prompt, and a second
    request that reuses the first one's cache (and its image) and adds another image."""
    pixels = torch.cat([preprocess(image, pan_and_scan=False)[0]
                        for image in pictures((300, 500), (120, 80))])
    first = render_prompt(tokenizer, [Turn("user", ["What is this?", ImagePart()])])
    reply = [Turn("model", "A picture."), Turn("user", ["And this one?", ImagePart()])]
    both = render_prompt(tokenizer, [Turn("user", ["What is this?", ImagePart()]), *reply])
    session = model.new_session(context_length=2048, chunk_size=100)
    session.prefill_to(first, pixels[:1])
    assert both[:len(first)] == first and session.prefill_to(both, pixels) == len(first)
    ids_t = torch.tensor([both])
    with torch.no_grad():
        expected = reference(input_ids=ids_t, pixel_values=pixels, logits_to_keep=1,
                             token_type_ids=(ids_t == IMAGE).long()).logits[0, -1]
    assert (session._next_logits - expected).abs().max() < 1e-4


def test_an_image_already_seen_is_not_encoded_again(model, tokenizer):
    encoded = []
    hook = model.vision.register_forward_hook(lambda m, args, out: encoded.append(len(args[0])))
    try:
        first, second = (preprocess(image, False)[0] for image in pictures((300, 200), (90, 90)))
        model.logits(prompt(tokenizer, [0]), first, rows=[0])
        model.logits(prompt(tokenizer, [0]), first, rows=[0])
        model.logits(prompt(tokenizer, [0, 0]), torch.cat([first, second]), rows=[0])
    finally:
        hook.remove()
    assert encoded == [1, 1]  # the first image once, then only the new one


def test_text_only_model_says_it_cannot_see(tiny_text_checkpoint, tokenizer):
    model = engine.load(tiny_text_checkpoint, device="cpu", dtype="float32")
    pixels, _ = preprocess(pictures((32, 32))[0], False)
    with pytest.raises(EngineError, match="text-only model and cannot see images"):
        model.logits(prompt(tokenizer, [0]), pixels)


# -- llama.cpp mmproj GGUF ----------------------------------------------------------------------

GGUF_PARTS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out",
              "layer_norm1": "ln1", "layer_norm2": "ln2"}


def gguf_vision_name(name: str, old_ffn: bool) -> str:
    """Canonical name -> llama.cpp's; old files (before PR #13290) swap fc1 and fc2."""
    fixed = {"vision_tower.embeddings.patch_embedding": "v.patch_embd",
             "vision_tower.embeddings.position_embedding": "v.position_embd",
             "vision_tower.post_layernorm": "v.post_ln",
             "multi_modal_projector.mm_soft_emb_norm": "mm.soft_emb_norm"}
    if name == "multi_modal_projector.mm_input_projection_weight":
        return "mm.input_projection.weight"
    stem, _, kind = name.rpartition(".")
    if stem in fixed:
        return f"{fixed[stem]}.{kind}"
    layer, part = stem.removeprefix("vision_tower.encoder.layers.").split(".", 1)
    ffn = {"mlp.fc1": "ffn_down" if old_ffn else "ffn_up",
           "mlp.fc2": "ffn_up" if old_ffn else "ffn_down"}
    return f"v.blk.{layer}.{({**GGUF_PARTS, **ffn})[part]}.{kind}"


def write_mmproj(tower, vision, path, old_ffn=False, f16_projection=False):
    """What llama.cpp's converter writes (our tower already holds the +1 soft-emb norm)."""
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    for key, value in [("image_size", vision.image_size), ("patch_size", vision.patch_size),
                       ("embedding_length", vision.hidden_size),
                       ("feed_forward_length", vision.intermediate_size),
                       ("block_count", vision.num_hidden_layers),
                       ("attention.head_count", vision.num_attention_heads)]:
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", vision.layer_norm_eps)
    for name, tensor in tower.state_dict().items():
        values = tensor.float().numpy()
        if f16_projection and "projection" in name:
            values = values.astype(np.float16)
        writer.add_tensor(gguf_vision_name(name, old_ffn), values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tower(config, hf_tensors):
    return load_vision_weights(new_tower(config), hf_tensors.items())


@pytest.mark.parametrize("old_ffn", [False, True], ids=["ffn_up is fc1", "old swapped ffn"])
def test_mmproj_gives_the_same_tower(old_ffn, config, tower, tmp_path):
    path = write_mmproj(tower, config.vision_config, tmp_path / "mmproj.gguf", old_ffn)
    vision_config, tensors = read_mmproj(path)
    assert vision_config == config.vision_config
    assert set(tensors) == set(tower.state_dict())
    loaded = new_tower(config)
    loaded.load_state_dict(dict(tensors))
    pixels = torch.rand(1, 3, 896, 896) * 2 - 1
    assert torch.equal(loaded(pixels), tower(pixels))


def test_mmproj_with_f16_projection_stays_close(config, tower, reference, tmp_path):
    path = write_mmproj(tower, config.vision_config, tmp_path / "f16.gguf", f16_projection=True)
    loaded = new_tower(config)
    loaded.load_state_dict(dict(read_mmproj(path)[1]))
    pixels = torch.rand(1, 3, 896, 896) * 2 - 1
    expected = reference_features(reference, pixels)
    error = (loaded(pixels) - expected).abs().max() / expected.abs().max()
    assert 0 < error < 2e-3  # fp16 rounding of the projection, nothing more


@pytest.fixture(scope="module")
def text_gguf(checkpoint, hf_tensors, tmp_path_factory):
    """The decoder alone as a Gemma3ForCausalLM folder, then as llama.cpp's GGUF of it."""
    from tests.test_gguf import write_gguf

    folder = tmp_path_factory.mktemp("text")
    data = json.loads((checkpoint / "config.json").read_text())
    text_config = dict(data["text_config"], architectures=["Gemma3ForCausalLM"])
    (folder / "config.json").write_text(json.dumps(text_config))
    prefix = "language_model.model."
    save_file({"model." + k[len(prefix):]: v for k, v in hf_tensors.items()
               if k.startswith(prefix)}, folder / "model.safetensors")
    return write_gguf(folder, folder / "text.gguf")


def test_text_gguf_with_mmproj_matches_transformers(text_gguf, config, tower, reference,
                                                    tokenizer, tmp_path):
    mmproj = write_mmproj(tower, config.vision_config, tmp_path / "mmproj.gguf", old_ffn=True)
    model = engine.load(text_gguf, device="cpu", dtype="float32", mmproj=mmproj)
    assert model.config.sees_images
    pixels, crops = preprocess(pictures((1000, 700))[0], pan_and_scan=True)
    assert crops == 2
    compare_logits(model, reference, prompt(tokenizer, [crops]), pixels)


def test_wrong_or_damaged_mmproj_files_are_named(text_gguf, config, tower, tmp_path):
    with pytest.raises(ModelLoadError, match="text.gguf: no vision projector"):
        read_mmproj(text_gguf)
    path = write_mmproj(tower, config.vision_config, tmp_path / "cut.gguf")
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(ModelLoadError, match="cut.gguf.*truncated"):
        read_mmproj(path)
    with pytest.raises(ModelLoadError, match="no such mmproj file"):
        read_mmproj(tmp_path / "absent.gguf")
