"""A checkpoint checked against its own config before any weights are read.

Shapes come from the file headers, so a file that does not fit its config fails when it is
opened: before the app lets go of the model in use, and before the quantiser, which reads the
matrices itself, could build one of the wrong size.
"""

from __future__ import annotations

import re

import torch

from engine.errors import ModelLoadError

_LAYER = re.compile(r"layers\.(\d+)\.")
AGAIN = "do not belong together: download the checkpoint again."


def check_tensors(checkpoint) -> None:
    """Every tensor the config implies is there, in the shape it implies."""
    path, shapes, text = checkpoint.path, checkpoint.shapes(), checkpoint.config.text_config
    source = checkpoint.config_source
    mismatch = f"The weights and {source} {AGAIN}"
    _check_embedding(path, shapes.get("embed_tokens.weight"), text, source, mismatch)
    held = 1 + max((int(m.group(1)) for name in shapes if (m := _LAYER.match(name))), default=-1)
    if held != text.num_hidden_layers:
        raise ModelLoadError(f"{path}: {source} says {text.num_hidden_layers} layers, the "
                             f"weights hold {held}. {mismatch}")
    for name, shape in expected_shapes(path, checkpoint.config).items():
        if name not in shapes:
            raise ModelLoadError(f"{path}: tensor '{name}' is missing, so the checkpoint is "
                                 "incomplete. Download it again.")
        if shapes[name] != shape:
            raise ModelLoadError(f"{path}: tensor '{name}' has shape {shapes[name]}, {source} "
                                 f"implies {shape}. {mismatch}")


def _check_embedding(path, shape, text, source: str, mismatch: str) -> None:
    if shape is None:
        raise ModelLoadError(f"{path}: no token embedding (embed_tokens.weight), so not a "
                             "Gemma 3 model or an incomplete download.")
    if shape != (text.vocab_size, text.hidden_size):
        raise ModelLoadError(
            f"{path}: {source} says vocab_size {text.vocab_size:,} and hidden_size "
            f"{text.hidden_size:,}, but the token embedding is {' x '.join(map(str, shape))}. "
            f"{mismatch}"
        )


def expected_shapes(path, config) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter the engine's model reads (built on the meta device,
    so nothing is allocated); the vision tower's too when the config has one."""
    from engine.text_model import TextModel
    from engine.vision_model import VisionTower

    try:
        with torch.device("meta"):
            modules = [TextModel(config.text_config)]
            if config.vision_config is not None:
                modules.append(VisionTower(config.vision_config, config.text_config.hidden_size,
                                           config.mm_tokens_per_image))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: the config describes no model that can be built "
                             f"({exc}). Restore it from the original download.") from exc
    return {name: tuple(param.shape) for module in modules
            for name, param in module.named_parameters()}
