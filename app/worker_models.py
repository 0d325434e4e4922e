"""The model list's rows: checkpoints found on disk, with the memory each needs on the chosen
device and the longest context that fits there (runs on the worker's helper thread)."""

from __future__ import annotations

from pathlib import Path

MIN_CONTEXT = 4096  # the memory shown is for this context (or the model's maximum if smaller)


def scan(folders: list[str], device: str) -> list[dict]:
    from engine.config import preset
    from engine.default_model import DEFAULT_MODEL_DESCRIPTION, default_model_path
    from engine.device import free_memory_bytes, pick_device, pick_dtype
    from engine.discovery import discover
    from engine.memory import HEADROOM, estimate, max_context_that_fits, total_params

    found = discover(folders)
    rows = [{"name": "Gemma 3 270M (bundled)", "path": "", "mmproj": "", "origin": "Bundled",
             "size": _size(default_model_path()), "config": preset("270m"),
             "description": DEFAULT_MODEL_DESCRIPTION}]
    rows += [{"name": m.name, "path": str(m.path), "mmproj": str(m.mmproj or ""),
              "origin": m.origin, "size": m.size, "config": m.config, "description": ""}
             for m in found]
    for row in rows:
        config = row.pop("config")
        target = _device(pick_device, device, total_params(config))
        dtype = pick_dtype(target)
        free = int(free_memory_bytes(target) * HEADROOM)
        context = min(MIN_CONTEXT, config.text_config.max_position_embeddings)
        row.update({
            "sees_images": config.sees_images or bool(row["mmproj"]),
            "params": total_params(config),
            "memory": estimate(config, context, dtype)["total"],
            "memory_context": context,
            "max_context": max_context_that_fits(config, free, dtype),
            "model_max_context": config.text_config.max_position_embeddings,
            "device": target.type,
        })
    return rows


def _device(pick_device, requested: str, params: int):
    try:
        return pick_device(requested, params)
    except RuntimeError:  # the chosen device is not in this machine: show what "auto" gives
        return pick_device("auto", params)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
