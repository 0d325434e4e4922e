"""The engine's one cache folder (assembled model, tokenizers, prepared weights, kernels)."""

from __future__ import annotations

from pathlib import Path

import platformdirs


def cache_dir(name: str) -> Path:
    """A subfolder of the user cache folder; appauthor=False avoids a doubled folder on Windows."""
    return Path(platformdirs.user_cache_dir("gemma-desk", False)) / name
