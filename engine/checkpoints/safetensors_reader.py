"""Hugging Face checkpoint folders: config.json + model.safetensors (single or sharded)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from engine.checkpoints.base import Checkpoint, is_gemma_norm
from engine.checkpoints.names import canonical_name
from engine.config import config_from_hf
from engine.errors import ModelLoadError


class SafetensorsCheckpoint(Checkpoint):
    def __init__(self, folder: Path):
        self.path = folder
        self.config = config_from_hf(self._read_json(folder / "config.json"))
        self._files = self._shard_files(folder)
        self._where: dict[str, tuple[Path, str]] = {}  # canonical name -> (file, stored name)
        for file in self._files:
            for stored in self._open(file).keys():
                name = canonical_name(stored)
                if name is not None:
                    self._where[name] = (file, stored)
        self._handles: dict[Path, object] = {}

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(
                f"{path.parent}: no config.json, not a Hugging Face checkpoint"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{path}: not valid JSON ({exc})") from exc

    def _shard_files(self, folder: Path) -> list[Path]:
        index = folder / "model.safetensors.index.json"
        if index.exists():
            weight_map = self._read_json(index).get("weight_map", {})
            files = sorted({folder / f for f in weight_map.values()})
        else:
            files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"{folder}: no .safetensors weights found")
        for file in files:
            if not file.exists():
                raise ModelLoadError(f"{file}: shard listed in the index is missing")
        return files

    def _open(self, file: Path):
        try:
            return safe_open(str(file), framework="pt")
        except Exception as exc:  # safetensors raises its own error types for truncated headers
            raise ModelLoadError(f"{file}: unreadable safetensors file ({exc})") from exc

    def tensor_names(self) -> list[str]:
        return list(self._where)

    def read(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if name not in self._where:
            raise ModelLoadError(f"{self.path}: tensor '{name}' is missing from the checkpoint")
        file, stored = self._where[name]
        handle = self._handles.get(file) or self._handles.setdefault(file, self._open(file))
        try:
            tensor = handle.get_tensor(stored)
        except Exception as exc:
            raise ModelLoadError(f"{file}: tensor '{stored}' cannot be read ({exc})") from exc
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
