"""GGUF files (llama.cpp) of architecture `gemma3`."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from engine.checkpoints.base import Checkpoint
from engine.checkpoints.dequant import dequantize, readable, type_name
from engine.checkpoints.gguf_file import open_gguf
from engine.config import ModelConfig, text_config_from_gguf
from engine.errors import ModelLoadError

_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_feedforward_layernorm",
}
_TOP_NAMES = {"token_embd": "embed_tokens", "output_norm": "norm", "output": "lm_head"}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.weight$")


def canonical_gguf_name(name: str) -> str | None:
    if match := _BLOCK.match(name):
        layer, part = match.groups()
        return f"layers.{layer}.{_BLOCK_NAMES[part]}.weight" if part in _BLOCK_NAMES else None
    stem = name.removesuffix(".weight")
    return f"{_TOP_NAMES[stem]}.weight" if stem in _TOP_NAMES else None


class GGUFCheckpoint(Checkpoint):
    """Norm weights in GGUF already hold the +1 (llama.cpp's norm_shift), so they pass as is."""

    config_source = "the GGUF metadata"

    def __init__(self, path: Path):
        self.path = path
        self.file = open_gguf(path)
        self.metadata = self.file.fields
        _check_architecture(path, self.metadata.get("general.architecture"))
        self._tensors = {}
        for tensor in self.file.tensors:
            name = canonical_gguf_name(tensor.name)
            if name is not None:
                self._tensors[name] = tensor
        if "embed_tokens.weight" not in self._tensors:
            raise ModelLoadError(f"{path}: no token_embd.weight tensor, so not a complete "
                                 "Gemma 3 model. Download or convert it again.")
        self._check_types()
        self.config = self._config()

    def _config(self) -> ModelConfig:
        prefix = "gemma3."
        meta = {k[len(prefix):]: v for k, v in self.metadata.items() if k.startswith(prefix)}
        embed = self._tensors["embed_tokens.weight"]
        meta["vocab_size"] = int(embed.shape[0])
        advice = "Convert the model again with llama.cpp's convert_hf_to_gguf.py."
        try:
            return ModelConfig(text_config=text_config_from_gguf(meta))
        except KeyError as exc:
            raise ModelLoadError(f"{self.path}: metadata key gemma3.{exc.args[0]} missing. "
                                 f"{advice}") from exc
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{self.path}: the gemma3.* metadata cannot be used ({exc}). "
                                 f"{advice}") from exc

    def _check_types(self) -> None:
        for tensor in self._tensors.values():
            if not readable(tensor.qtype):
                raise ModelLoadError(
                    f"{self.path}: tensor '{tensor.name}' is stored as {type_name(tensor.qtype)}, "
                    "which this app cannot read. Choose a GGUF quantised with a common type "
                    "(Q4_K_M, Q5_K_M, Q6_K, Q8_0, BF16 or F16)."
                )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(tensor.shape) for name, tensor in self._tensors.items()}

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def gguf_tensor(self, name: str):
        if name not in self._tensors:
            raise ModelLoadError(f"{self.path}: tensor '{name}' is missing from the GGUF file")
        return self._tensors[name]

    def read(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        tensor = self.gguf_tensor(name)
        try:
            values = dequantize(tensor.data, tensor.qtype, tensor.shape)
        except (ValueError, IndexError, RuntimeError) as exc:
            raise ModelLoadError(f"{self.path}: tensor '{tensor.name}' cannot be read ({exc}). "
                                 "Download or convert the file again.") from exc
        return values.to(device=device, dtype=dtype)

    def tokenizer_problem(self) -> str:
        if "tokenizer.ggml.tokens" in self.metadata:
            return ""
        return (f"{self.path.name} holds no tokenizer (no tokenizer.ggml.tokens), which is "
                "needed to read and write text. Use a GGUF made by llama.cpp's converter, "
                "which stores it.")

    def tokenizer(self):
        if "tokenizer.ggml.tokens" not in self.metadata:
            return None  # weights alone still give logits; text generation needs a tokenizer
        from engine.tokenizer import Tokenizer

        return Tokenizer.from_gguf(self.file)


def _check_architecture(path: Path, arch) -> None:
    if arch == "gemma3":
        return
    if arch == "clip":
        raise ModelLoadError(f"{path}: a vision projector (mmproj), not a model. Open the Gemma 3 "
                             "model file and give this one as its vision projector.")
    what = (f"architecture '{arch}' is not supported (need gemma3)" if arch
            else "no general.architecture in its metadata")
    raise ModelLoadError(f"{path}: {what}. This app runs Gemma 3 models only.")
