"""Checkpoint readers: Hugging Face safetensors folders and GGUF files.

Every reader yields tensors under one canonical naming (the HF text names without any prefix,
`vision_tower.*` and `multi_modal_projector.*` for the image path), with every Gemma RMSNorm
weight stored as its multiplier (1 + w): HF checkpoints get +1 here, GGUF files already hold it.
"""

from __future__ import annotations

from pathlib import Path

from engine.checkpoints.base import Checkpoint
from engine.checkpoints.checks import check_tensors
from engine.errors import ModelLoadError


def open_checkpoint(source: str | Path) -> Checkpoint:
    """The checkpoint at `source`, its config and tensor headers checked (no weights read)."""
    path = Path(source).expanduser()
    _check_path(path)
    if path.is_dir():
        from engine.checkpoints.safetensors_reader import SafetensorsCheckpoint

        checkpoint = SafetensorsCheckpoint(path)
    else:
        from engine.checkpoints.gguf_reader import GGUFCheckpoint

        checkpoint = GGUFCheckpoint(path)
    check_tensors(checkpoint)
    return checkpoint


def _check_path(path: Path) -> None:
    """A folder, or a regular .gguf file: anything else fails here, with what to choose."""
    if not path.exists():
        if path.is_symlink():
            raise ModelLoadError(f"{path}: a link that leads nowhere (its target is gone, or "
                                 "it points back to itself). Choose the model itself.")
        raise ModelLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if ggufs and not (path / "config.json").exists():
            raise ModelLoadError(f"{path}: a folder of GGUF files ({', '.join(ggufs)}). Choose "
                                 "the model file itself.")
        return
    if path.suffix.lower() != ".gguf":
        raise ModelLoadError(
            f"{path}: not a model. Choose a Hugging Face checkpoint folder (config.json + "
            "*.safetensors) or a .gguf file."
        )
    if not path.is_file():  # a pipe or a device would block or never end
        raise ModelLoadError(f"{path}: not a regular file. Choose the .gguf file itself.")


__all__ = ["Checkpoint", "open_checkpoint"]
