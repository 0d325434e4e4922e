"""Hugging Face checkpoint folders: config.json + model.safetensors (single or sharded)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engine.checkpoints.base import Checkpoint, is_gemma_norm
from engine.checkpoints.names import canonical_name
from engine.config import GEMMA3_TYPES, config_from_hf
from engine.errors import ModelLoadError

INDEX = "model.safetensors.index.json"
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")  # safetensors' names; anything else is not weights
DOWNLOAD_AGAIN = "Download the checkpoint again."


class SafetensorsCheckpoint(Checkpoint):
    config_source = "config.json"

    def __init__(self, folder: Path):
        self.path = folder
        self.config = _read_config(folder / "config.json")
        self._where: dict[str, tuple[Path, str]] = {}  # canonical name -> (file, stored name)
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._handles: dict[Path, object] = {}
        for file, placed in _shard_files(folder).items():
            self._index(file, placed)

    def _index(self, file: Path, placed: set[str] | None) -> None:
        """Where each tensor lies, and its shape and type, from the file's header alone."""
        handle = self._handles[file] = _open(file)
        stored = set(handle.keys())
        if placed is not None and (lost := placed - stored):
            raise ModelLoadError(
                f"{file}: lacks {len(lost)} tensor(s) that {INDEX} places there (such as "
                f"'{min(lost)}'), so the shard is incomplete or from another download. "
                f"{DOWNLOAD_AGAIN}"
            )
        for key in stored:
            name = canonical_name(key)
            if name is None:
                continue
            tensor = handle.get_slice(key)
            _check_type(file, key, tensor.get_dtype())
            self._where[name] = (file, key)
            self._shapes[name] = tuple(tensor.get_shape())

    def tensor_names(self) -> list[str]:
        return list(self._where)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._shapes)

    def read(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if name not in self._where:
            raise ModelLoadError(f"{self.path}: tensor '{name}' is missing from the checkpoint")
        file, stored = self._where[name]
        try:
            tensor = self._handles[file].get_tensor(stored)
        except Exception as exc:
            raise ModelLoadError(f"{file}: tensor '{stored}' cannot be read ({exc}). "
                                 f"{DOWNLOAD_AGAIN}") from exc
        if is_gemma_norm(name):
            tensor = tensor.float() + 1.0  # HF stores w; the engine keeps the multiplier 1 + w
        return tensor.to(device=device, dtype=dtype)

    def tokenizer_problem(self) -> str:
        if (self.path / "tokenizer.model").exists():
            return ""
        return (f"{self.path.name} has no tokenizer.model, which is needed to read and write "
                f"text. Copy it from the original Gemma 3 download (every google/gemma-3 "
                f"repository has one) into {self.path}.")

    def tokenizer(self):
        model_file = self.path / "tokenizer.model"
        if not model_file.exists():
            return None  # weights alone still give logits; text generation needs a tokenizer
        from engine.tokenizer import Tokenizer

        return Tokenizer.from_model_file(model_file)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc}). {DOWNLOAD_AGAIN}") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _read_config(path: Path):
    if not path.is_file():
        raise ModelLoadError(
            f"{path.parent}: no config.json, so not a Hugging Face checkpoint. Choose the folder "
            "that holds config.json and the .safetensors files, or a .gguf file."
        )
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: holds a JSON {type(data).__name__}, not a model "
                             f"configuration. {DOWNLOAD_AGAIN}")
    _check_model_type(path, data)
    try:
        return config_from_hf(data)
    except (ValueError, TypeError, AttributeError) as exc:  # a value of the wrong kind
        raise ModelLoadError(f"{path}: {exc}. Restore config.json from the original "
                             "download.") from exc


def _check_model_type(path: Path, data: dict) -> None:
    """Another family's config would be read with Gemma defaults, so it is refused by name."""
    kind = data.get("model_type")
    if kind is not None and kind not in GEMMA3_TYPES:
        raise ModelLoadError(f"{path}: a '{kind}' model, not Gemma 3. This app runs Gemma 3 "
                             "models only.")
    quantised = data.get("quantization_config")
    if quantised:
        method = quantised.get("quant_method") if isinstance(quantised, dict) else None
        raise ModelLoadError(
            f"{path.parent}: weights quantised with {method or 'an unknown method'}, which this "
            "app does not read. Use the original (bf16) checkpoint or a GGUF file."
        )


def _shard_files(folder: Path) -> dict[Path, set[str] | None]:
    """Each weights file, with the stored names the index places in it (None: no index)."""
    index = folder / INDEX
    if not index.exists():
        files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
        if not files:
            raise ModelLoadError(f"{folder}: no .safetensors weights found. {DOWNLOAD_AGAIN}")
        return dict.fromkeys(files)
    data = _read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not weight_map or not isinstance(weight_map, dict) or not all(
            isinstance(shard, str) for shard in weight_map.values()):
        raise ModelLoadError(f"{index}: no usable weight_map. {DOWNLOAD_AGAIN}")
    placed: dict[Path, set[str]] = {}
    for name, shard in weight_map.items():
        if Path(shard).name != shard:
            raise ModelLoadError(f"{index}: names '{shard}', which is not a file of this "
                                 f"folder. {DOWNLOAD_AGAIN}")
        placed.setdefault(folder / shard, set()).add(name)
    for file in placed:
        if not file.is_file():
            raise ModelLoadError(f"{file}: shard listed in {INDEX} is missing. Every shard is "
                                 f"needed: {DOWNLOAD_AGAIN.lower()}")
    return dict(sorted(placed.items()))


def _open(file: Path):
    try:
        return safe_open(str(file), framework="pt")
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        raise ModelLoadError(f"{file}: unreadable safetensors file ({exc}). "
                             f"{DOWNLOAD_AGAIN}") from exc


def _check_type(file: Path, key: str, kind: str) -> None:
    if kind in FLOAT_TYPES:
        return
    if kind.startswith("F8"):
        raise ModelLoadError(f"{file}: tensor '{key}' is stored as 8-bit floats ({kind}), which "
                             "this app does not read. Use the original (bf16) checkpoint or a "
                             "GGUF file.")
    raise ModelLoadError(f"{file}: tensor '{key}' is stored as {kind}, not as floating-point "
                         f"weights, so the file is damaged or not a Gemma 3 checkpoint. "
                         f"{DOWNLOAD_AGAIN}")
