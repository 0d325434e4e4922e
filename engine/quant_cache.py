"""Prepared int8 matrices kept on disk, so a model is converted once, not at every load.

Turning a GGUF file's 4-6 bit blocks into int8 groups takes seconds; reading them back takes
a fraction of one. One folder per source file in the user cache holds `weights.bin` (every matrix,
64-byte aligned) and `index.json` (where each one lies, and the source's size and mtime: a
changed file is converted again). Large models are not cached (their int8 copy would fill the
disk; their load is dominated by reading anyway).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

FORMAT = 2  # 2: q/k/v and gate/up stored fused
MAX_BYTES = 2 << 30  # larger prepared models are converted at every load instead
ALIGN = 64
MADV_HUGEPAGE = 14  # Linux's value


def cache_root() -> Path:
    from engine import paths

    return paths.cache_dir("prepared")


def _stamp(source: Path, scheme: str) -> dict:
    stat = source.stat()
    return {"format": FORMAT, "scheme": scheme, "size": stat.st_size, "mtime": stat.st_mtime_ns}


def _folder(source: Path) -> Path:
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return cache_root() / f"{source.stem[:40]}-{digest}"


def load(source: Path | None, scheme: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """{name: (int8 values, fp16 scales)} mapped from the cache, or None when absent/stale."""
    if source is None or not source.is_file():
        return None
    folder = _folder(source)
    try:
        index = json.loads((folder / "index.json").read_text())
        if index["stamp"] != _stamp(source, scheme):
            return None
        path = folder / "weights.bin"
        if path.stat().st_size != index["bytes"]:
            return None
        raw = _read(path, index["bytes"])
    except (OSError, ValueError, KeyError):
        return None
    return {name: tuple(_view(raw, *entry) for entry in entries)
            for name, entries in index["tensors"].items()}


def _read(path: Path, size: int) -> torch.Tensor:
    """The file in memory the OS may back with 2 MB pages: a decode step reads every weight,
    and with 4 KB pages the output layer's product took 10% longer (address translation).
    Read rather than mapped, so the file's cached pages never count as this process's too."""
    raw = torch.empty(size, dtype=torch.uint8)
    _advise_large_pages(raw)
    with open(path, "rb") as f:
        if f.readinto(memoryview(raw.numpy())) != size:
            raise OSError(f"{path} ended early")
    return raw


def _advise_large_pages(tensor: torch.Tensor) -> None:
    """madvise(MADV_HUGEPAGE) before the memory is first touched; Linux only, best effort."""
    if not sys.platform.startswith("linux"):
        return
    page = os.sysconf("SC_PAGE_SIZE")
    start = -(-tensor.data_ptr() // page) * page
    end = (tensor.data_ptr() + tensor.nbytes) // page * page
    try:
        libc = ctypes.CDLL(None)
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(max(0, end - start)), MADV_HUGEPAGE)
    except (OSError, AttributeError):
        pass


def _view(raw: torch.Tensor, offset: int, dtype: str, shape: list[int]) -> torch.Tensor:
    dtype = getattr(torch, dtype)
    n = int(np.prod(shape)) * torch.empty(0, dtype=dtype).element_size()
    return raw[offset:offset + n].view(dtype).reshape(shape)


def save(source: Path | None, scheme: str, matrices: dict[str, tuple[torch.Tensor, ...]]) -> bool:
    """Write the prepared matrices (atomically: a reader sees the old state or the new one)."""
    if source is None or not source.is_file():
        return False
    total = sum(t.nbytes for pair in matrices.values() for t in pair)
    if total > MAX_BYTES:
        return False
    folder = _folder(source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tensors, offset = {}, 0
        partial = folder / f"weights.bin.{os.getpid()}"
        with open(partial, "wb") as f:
            for name, pair in matrices.items():
                entries = []
                for tensor in pair:
                    f.write(b"\0" * (-offset % ALIGN))
                    offset += -offset % ALIGN
                    f.write(memoryview(tensor.contiguous().numpy()))
                    entries.append([offset, str(tensor.dtype).removeprefix("torch."),
                                    list(tensor.shape)])
                    offset += tensor.nbytes
                tensors[name] = entries
        index = {"stamp": _stamp(source, scheme), "bytes": offset, "tensors": tensors}
        os.replace(partial, folder / "weights.bin")
        index_partial = folder / f"index.json.{os.getpid()}"
        index_partial.write_text(json.dumps(index))
        os.replace(index_partial, folder / "index.json")
        return True
    except OSError:
        return False
