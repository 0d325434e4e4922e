"""Checkpoint readers: Hugging Face safetensors folders and GGUF files.

Every reader yields tensors under one canonical naming (the HF text names without any prefix,
`vision_tower.*` and `multi_modal_projector.*` for the image path), with every Gemma RMSNorm
weight stored as its multiplier (1 + w): HF checkpoints get +1 here, GGUF files already hold it.
"""

from __future__ import annotations

from pathlib import Path

from engine.checkpoints.base import Checkpoint
from engine.errors import ModelLoadError


def open_checkpoint(source: str | Path) -> Checkpoint:
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        from engine.checkpoints.safetensors_reader import SafetensorsCheckpoint

        return SafetensorsCheckpoint(path)
    if path.suffix.lower() == ".gguf":
        from engine.checkpoints.gguf_reader import GGUFCheckpoint

        return GGUFCheckpoint(path)
    raise ModelLoadError(
        f"{path}: not a model. Choose a Hugging Face checkpoint folder (config.json + "
        "*.safetensors) or a .gguf file."
    )


__all__ = ["Checkpoint", "open_checkpoint"]
