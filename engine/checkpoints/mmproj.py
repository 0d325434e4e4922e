"""llama.cpp "mmproj" GGUF files of projector type gemma3: the vision tower beside a text GGUF.

Tensor names come from llama.cpp's converter (GEMMA3_REFERENCE.md 4.6). Shapes read here are in
torch order already (GGML lists the fastest dimension first; the container reader reverses it),
and the projection keeps HF's [vision, text] layout. Only `mm.soft_emb_norm` was given +1 by the
converter, which is the engine's convention too. Files converted before llama.cpp PR #13290
store fc1 as `ffn_down` and fc2 as `ffn_up`, so the two are told apart by shape, not by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from engine.checkpoints.dequant import dequantize, readable, type_name
from engine.checkpoints.gguf_file import GGUFTensor, open_gguf
from engine.config import VisionConfig
from engine.errors import ModelLoadError

_TOP = {
    "v.patch_embd": "vision_tower.embeddings.patch_embedding",
    "v.position_embd": "vision_tower.embeddings.position_embedding",
    "v.post_ln": "vision_tower.post_layernorm",
    "mm.soft_emb_norm": "multi_modal_projector.mm_soft_emb_norm",
}
_BLOCK_PARTS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                "attn_v": "self_attn.v_proj", "attn_out": "self_attn.out_proj",
                "ln1": "layer_norm1", "ln2": "layer_norm2"}
_BLOCK = re.compile(r"v\.blk\.(\d+)\.(\w+)\.(weight|bias)$")
PROJECTION = "multi_modal_projector.mm_input_projection_weight"


class MmprojTensors(Mapping):
    """canonical name -> fp32 tensor, dequantised when asked for (one at a time in memory)."""

    def __init__(self, path: Path, tensors: dict[str, GGUFTensor]):
        self.path, self._tensors = path, tensors

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._tensors:
            raise ModelLoadError(f"{self.path}: the mmproj file has no tensor for '{name}'")
        tensor = self._tensors[name]
        try:
            return dequantize(tensor.data, tensor.qtype, tensor.shape).clone()  # off the mmap
        except (ValueError, IndexError, RuntimeError) as exc:
            raise ModelLoadError(f"{self.path}: tensor '{tensor.name}' cannot be read ({exc}). "
                                 "Download or convert the file again.") from exc

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(tensor.shape) for name, tensor in self._tensors.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def read_mmproj(path: str | Path) -> tuple[VisionConfig, MmprojTensors]:
    """The vision config and the canonical-named tensors of a Gemma 3 mmproj GGUF file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such mmproj file")
    file = open_gguf(path)
    try:
        config = _vision_config(path, file.fields)
    except (ValueError, TypeError) as exc:  # a value of the wrong kind
        raise ModelLoadError(f"{path}: the clip.vision metadata cannot be used ({exc}). "
                             "Download or convert the file again.") from exc
    tensors = _canonical_tensors(file.tensors)
    for tensor in tensors.values():
        if not readable(tensor.qtype):
            raise ModelLoadError(f"{path}: tensor '{tensor.name}' is stored as "
                                 f"{type_name(tensor.qtype)}, which this app cannot read. Choose "
                                 "an mmproj file in F16, BF16 or Q8_0.")
    for layer in range(config.num_hidden_layers):
        _place_ffn(path, tensors, layer, config)
    return config, MmprojTensors(path, tensors)


def _vision_config(path: Path, fields: dict) -> VisionConfig:
    kind = fields.get("clip.projector_type") or fields.get("clip.vision.projector_type")
    if kind != "gemma3":
        what = f"projector type '{kind}'" if kind else "no vision projector"
        raise ModelLoadError(f"{path}: {what}; choose the mmproj file made for Gemma 3")
    scale = int(fields.get("clip.vision.projector.scale_factor", 4))
    if scale != 4:
        raise ModelLoadError(f"{path}: pools patches by {scale}, Gemma 3 pools by 4")

    def field(key: str):
        if f"clip.vision.{key}" not in fields:
            raise ModelLoadError(f"{path}: metadata key clip.vision.{key} missing")
        return fields[f"clip.vision.{key}"]

    eps = float(fields.get("clip.vision.attention.layer_norm_epsilon", 1e-6))
    return VisionConfig(
        hidden_size=int(field("embedding_length")),
        intermediate_size=int(field("feed_forward_length")),
        num_hidden_layers=int(field("block_count")),
        num_attention_heads=int(field("attention.head_count")),
        image_size=int(field("image_size")),
        patch_size=int(field("patch_size")),
        layer_norm_eps=float(f"{eps:.7g}"),  # stored as float32: 1e-6 reads 9.99999997e-7
    )


def _canonical_tensors(tensors: list[GGUFTensor]) -> dict[str, GGUFTensor]:
    """Everything but the feed-forward pair, which _place_ffn names by shape."""
    named = {}
    for tensor in tensors:
        if tensor.name == "mm.input_projection.weight":
            named[PROJECTION] = tensor
        elif match := _BLOCK.match(tensor.name):
            layer, part, kind = match.groups()
            part = _BLOCK_PARTS.get(part, part)  # ffn_up / ffn_down stay as they are for now
            named[f"vision_tower.encoder.layers.{layer}.{part}.{kind}"] = tensor
        elif (stem := tensor.name.rpartition(".")[0]) in _TOP:
            named[f"{_TOP[stem]}.{tensor.name.rpartition('.')[2]}"] = tensor
    return named


def _place_ffn(path: Path, tensors: dict[str, GGUFTensor], layer: int,
               config: VisionConfig) -> None:
    prefix = f"vision_tower.encoder.layers.{layer}."
    parts = {f"{which}.{kind}": tensors.pop(f"{prefix}ffn_{which}.{kind}", None)
             for which in ("up", "down") for kind in ("weight", "bias")}
    if None in parts.values():
        raise ModelLoadError(f"{path}: block {layer} lacks some of its ffn_up/ffn_down tensors")
    fc1_shape = (config.intermediate_size, config.hidden_size)
    fc1, fc2 = ("up", "down") if tuple(parts["up.weight"].shape) == fc1_shape else ("down", "up")
    for kind in ("weight", "bias"):
        tensors[f"{prefix}mlp.fc1.{kind}"] = parts[f"{fc1}.{kind}"]
        tensors[f"{prefix}mlp.fc2.{kind}"] = parts[f"{fc2}.{kind}"]
