"""engine.load(): read a checkpoint tensor by tensor into a Model on the chosen device."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from engine.checkpoints import open_checkpoint
from engine.checkpoints.base import assign_parameter
from engine.device import pick_device, pick_dtype
from engine.errors import ModelLoadError
from engine.memory import total_params
from engine.model import Model
from engine.text_model import TextModel


def load_model(source=None, *, device="auto", dtype="auto", progress=None, mmproj=None,
               quantization=None) -> Model:
    """quantization: "auto" (the default with dtype "auto"), "int8", "bf16" or "none" (the
    default for an explicit dtype: dtype="float32" is the exact fp32 path)."""
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    if source is None:
        from engine.default_model import ensure_default_model

        report(0.0, "Preparing the bundled Gemma 3 270M")
        source = ensure_default_model()
    checkpoint = open_checkpoint(source)
    config = checkpoint.config
    target = pick_device(device, total_params(config))
    weight_dtype = pick_dtype(target, dtype)
    with torch.device("meta"):
        text = TextModel(config.text_config)
    scheme = quantization or ("auto" if dtype == "auto" else "none")
    if scheme != "none":
        from engine.quant import quantize_text

        report(0.0, "Preparing quantised weights")
        scheme = quantize_text(text, scheme, checkpoint, weight_dtype, target)
    names = [name for name, param in text.named_parameters() if param.is_meta]
    for i, name in enumerate(names):
        report(i / len(names), f"Loading {name}")
        assign_parameter(text, name, _read(checkpoint, name, weight_dtype, target, text))
    vision = _load_vision(checkpoint, config, weight_dtype, target, mmproj)
    report(1.0, "Loading the tokenizer")
    model = Model(config, text.eval(), vision, checkpoint.tokenizer(), Path(source),
                  _describe(checkpoint, target, weight_dtype, scheme))
    model.quantization = scheme
    model.load_seconds = time.perf_counter() - started
    return model


def _read(checkpoint, name, dtype, device, module) -> torch.Tensor:
    expected = module.get_parameter(name)
    norm = expected.dtype == torch.float32 and expected.dim() == 1 and name.endswith("norm.weight")
    tensor = checkpoint.read(name, torch.float32 if norm else dtype, device)
    if tuple(tensor.shape) != tuple(expected.shape):
        raise ModelLoadError(
            f"{checkpoint.path}: tensor '{name}' has shape {tuple(tensor.shape)}, "
            f"the config implies {tuple(expected.shape)}"
        )
    return tensor


def _load_vision(checkpoint, config, dtype, device, mmproj):
    if mmproj is not None:
        from engine.checkpoints.mmproj import read_mmproj

        vision_config, tensors = read_mmproj(mmproj)
        config.vision_config = vision_config
        source = tensors.__getitem__
    elif config.vision_config is not None:
        source = lambda name: checkpoint.read(name, torch.float32, torch.device("cpu"))  # noqa: E731
    else:
        return None
    from engine.vision_model import VisionTower

    with torch.device("meta"):
        tower = VisionTower(config.vision_config, config.text_config.hidden_size,
                            config.mm_tokens_per_image)
    for name, expected in list(tower.named_parameters()):
        tensor = source(name)
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelLoadError(f"vision tensor '{name}' has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(expected.shape)}")
        keep_fp32 = name.endswith("norm.weight") and "vision_tower" not in name
        assign_parameter(tower, name, tensor.to(device, torch.float32 if keep_fp32 else dtype))
    return tower.eval()


def _describe(checkpoint, device, dtype, scheme: str) -> str:
    """"Gemma 3 4B on CPU, int8 weights": the weights as they are held, which is what sets the
    memory and the speed (activations stay in `dtype`)."""
    name = getattr(checkpoint, "metadata", {}).get("general.name") or checkpoint.path.name
    weights = {"int8": "int8 weights", "bf16": "bfloat16 weights"}.get(
        scheme, str(dtype).removeprefix("torch."))
    return f"{name} on {device.type.upper()}, {weights}"
