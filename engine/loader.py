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
    default for an explicit dtype: dtype="float32" is the exact fp32 path).

    `progress(fraction, message)` is called before each tensor is read; a Cancelled it raises
    stops the load there, and everything read so far is let go with the exception."""
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    if source is None:
        from engine.default_model import ensure_default_model

        report(0.0, "Preparing the bundled Gemma 3 270M")
        source = ensure_default_model()
    checkpoint = open_checkpoint(source)
    config = checkpoint.config
    vision = _plan_vision(checkpoint, config, mmproj)  # a bad mmproj fails before the weights
    target = pick_device(device, total_params(config))
    weight_dtype = pick_dtype(target, dtype)
    with torch.device("meta"):
        text = TextModel(config.text_config)
    reads = len(list(text.parameters())) + (len(list(vision[0].parameters())) if vision else 0)
    checkpoint = ReportingReads(checkpoint, reads, report)
    scheme = quantization or ("auto" if dtype == "auto" else "none")
    if scheme != "none":
        from engine.quant import quantize_text

        report(0.0, "Preparing quantised weights")
        scheme = quantize_text(text, scheme, checkpoint, weight_dtype, target)
    for name in [name for name, param in text.named_parameters() if param.is_meta]:
        assign_parameter(text, name, _read(checkpoint, name, weight_dtype, target, text))
    tower = _fill_vision(*vision, checkpoint, weight_dtype, target) if vision else None
    report(1.0, "Loading the tokenizer")
    tokenizer = _tokenizer(checkpoint, config)
    model = Model(config, text.eval(), tower, tokenizer, Path(source),
                  _describe(checkpoint, target, weight_dtype, scheme))
    model.quantization = scheme
    model.load_seconds = time.perf_counter() - started
    return model


class ReportingReads:
    """The checkpoint, reporting progress before each tensor it reads. The quantiser reads most
    of the weights itself, so this is what lets a Cancelled stop a load between two tensors."""

    def __init__(self, checkpoint, total: int, report):
        self._checkpoint, self._total, self._report, self._done = checkpoint, total, report, 0

    def __getattr__(self, name: str):
        return getattr(self._checkpoint, name)

    def step(self, name: str) -> None:
        self._report(min(self._done / max(self._total, 1), 1.0), f"Loading {name}")
        self._done += 1

    def read(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        self.step(name)
        return self._checkpoint.read(name, dtype, device)


def _read(checkpoint, name, dtype, device, module) -> torch.Tensor:
    """Shapes were checked when the checkpoint was opened; norms stay fp32."""
    expected = module.get_parameter(name)
    norm = expected.dtype == torch.float32 and expected.dim() == 1 and name.endswith("norm.weight")
    return checkpoint.read(name, torch.float32 if norm else dtype, device)


def _plan_vision(checkpoint, config, mmproj):
    """(vision tower on the meta device, where its weights come from), or None; an mmproj
    file is opened and its shapes checked here, before any weights are read."""
    if mmproj is not None:
        from engine.checkpoints.mmproj import read_mmproj

        config.vision_config, tensors = read_mmproj(mmproj)
        origin, shapes, source = Path(mmproj), tensors.shapes(), tensors.__getitem__
    elif config.vision_config is not None:
        origin, shapes = checkpoint.path, checkpoint.shapes()
        source = lambda name: checkpoint.read(name, torch.float32, torch.device("cpu"))  # noqa: E731
    else:
        return None
    from engine.vision_model import VisionTower

    try:
        with torch.device("meta"):
            tower = VisionTower(config.vision_config, config.text_config.hidden_size,
                                config.mm_tokens_per_image)
    except ValueError as exc:
        raise ModelLoadError(f"{origin}: no vision tower can be built from it ({exc})") from exc
    for name, expected in tower.named_parameters():
        if name not in shapes:
            raise ModelLoadError(f"{origin}: vision tensor '{name}' is missing. Download or "
                                 "convert the file again.")
        if shapes[name] != tuple(expected.shape):
            raise ModelLoadError(f"{origin}: vision tensor '{name}' has shape {shapes[name]}, "
                                 f"expected {tuple(expected.shape)}: it was made for another "
                                 "model. Choose the vision file that came with this one.")
    return tower, source


def _fill_vision(tower, source, reads: ReportingReads, dtype, device):
    for name in [name for name, _ in tower.named_parameters()]:
        reads.step(name)
        keep_fp32 = name.endswith("norm.weight") and "vision_tower" not in name
        tensor = source(name).to(device, torch.float32 if keep_fp32 else dtype)
        assign_parameter(tower, name, tensor)
    return tower.eval()


def _tokenizer(checkpoint, config):
    """The checkpoint's tokenizer, if it has one; one with more tokens than the embedding has
    rows would index past the end of it on the first such token."""
    tokenizer = checkpoint.tokenizer()
    rows = config.text_config.vocab_size
    if tokenizer is not None and tokenizer.vocab_size > rows:
        raise ModelLoadError(f"{checkpoint.path}: the tokenizer has {tokenizer.vocab_size:,} "
                             f"tokens but the model only {rows:,}, so it belongs to another "
                             "model. Use the tokenizer that came with these weights.")
    return tokenizer


def _describe(checkpoint, device, dtype, scheme: str) -> str:
    """"Gemma 3 4B on CPU, int8 weights": the weights as they are held, which is what sets the
    memory and the speed (activations stay in `dtype`)."""
    name = getattr(checkpoint, "metadata", {}).get("general.name") or checkpoint.path.name
    weights = {"int8": "int8 weights", "bf16": "bfloat16 weights"}.get(
        scheme, str(dtype).removeprefix("torch."))
    return f"{name} on {device.type.upper()}, {weights}"
