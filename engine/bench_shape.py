"""`gemma-desk-cli bench-shape`: a Gemma 3 shape with random weights (no checkpoint needed) on
one device, for the sizes no small model shows: decode and 32K-token prefill speed of the 4B on
a GPU, and how close decoding comes to the device's memory bandwidth.

Decoding one token reads every weight once (the tied token table as the output layer), one row
of the table as its input, and the KV cache it attends, so at bandwidth B no step can take less
than bytes / B. B is measured here by copying 1 GiB on the device (reading and writing it), the
bandwidth a kernel can reach in practice; the datasheet's figure is somewhat higher.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from engine.config import ModelConfig, TextConfig, preset
from engine.device import device_name, pick_device, pick_dtype, synchronize
from engine.graph_step import GraphDecoder
from engine.memory import text_params
from engine.model import Model
from engine.quant import quantize_for_inference
from engine.text_model import TextModel


@dataclass
class ShapeSizes:
    decode_prompt: int = 512
    decode_tokens: int = 128
    prefill: int = 32768
    runs: int = 3
    copy_bytes: int = 1 << 30


QUICK_SHAPE = ShapeSizes(decode_prompt=16, decode_tokens=8, prefill=64, runs=1, copy_bytes=1 << 24)


def random_model(config: TextConfig, device: torch.device, dtype: torch.dtype) -> Model:
    """A text model of this shape with random weights, built on the device itself."""
    torch.manual_seed(0)
    with torch.device(device):
        text = TextModel(config)
    text.requires_grad_(False)
    text.embed_tokens.weight.normal_(0.0, 0.02)  # the table is left unset by TextModel
    return Model(ModelConfig(text_config=config), text.to(dtype).eval(), description="random")


def copy_bandwidth(device: torch.device, nbytes: int, runs: int = 5) -> float:
    """Bytes per second read plus written by the best of a few on-device copies."""
    source = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(runs):
        best = min(best, _timed(device, lambda: target.copy_(source)))
    return 2 * nbytes / best


def bytes_per_token(model: Model, context: int) -> int:
    """What one decode step at `context` tokens reads: every weight once as it is stored (the
    tied token table as the output layer; the one row of it that is the input is left out, a
    few kilobytes), and the keys and values each layer attends (a sliding-window layer at most
    its window)."""
    config = model.config.text_config
    text = model.text
    weights = sum(t.nbytes for t in (*text.parameters(), *text.buffers()))
    weights += sum(m.matrix.q.nbytes + m.matrix.scales.nbytes
                   for m in text.modules() if hasattr(m, "matrix"))  # int8 on the CPU
    per_key = 2 * config.num_key_value_heads * config.head_dim * model.dtype.itemsize
    kv = sum(per_key * (min(context, config.sliding_window) if config.is_sliding(i) else context)
             for i in range(config.num_hidden_layers))
    return weights + kv


def measure_shape(config: TextConfig, device: torch.device, dtype: torch.dtype,
                  sizes: ShapeSizes, compile_step: bool = False,
                  quantization: str = "auto") -> dict:
    """Every figure for one shape on one device; lists hold one value per run. The weights are
    quantised as the app's loader would ("auto": int8 on the CPU, as they are on a GPU)."""
    model = random_model(config, device, dtype)
    applied = quantize_for_inference(model, quantization)
    model.stop_ids = frozenset()  # decode a fixed number of tokens
    context = min(sizes.prefill + 256, config.max_position_embeddings)
    prompt = torch.randint(1000, 100_000, (min(sizes.prefill, context - 1),),
                           generator=torch.Generator().manual_seed(1)).tolist()
    session = model.new_session(context_length=context)
    decode = decode_variants(model, session, prompt, sizes, compile_step)
    prefill = []
    for _ in range(sizes.runs):
        session.truncate(0)
        prefill.append(len(prompt) / _timed(device, lambda: session.prefill(prompt)))
    mean_context = sizes.decode_prompt + sizes.decode_tokens // 2
    return {"device": device_name(device), "dtype": str(dtype).removeprefix("torch."),
            "quantization": applied, "parameters": text_params(config),
            "step": describe_step(model.text.one_token), **decode,
            "prefill_tokens": len(prompt), "prefill_tps": prefill,
            "bytes_per_token": bytes_per_token(model, mean_context),
            "copy_bandwidth": copy_bandwidth(device, sizes.copy_bytes),
            "sizes": asdict(sizes)}


def decode_variants(model: Model, session, prompt: list[int], sizes: ShapeSizes,
                    compile_step: bool) -> dict:
    """Decode speed with the step the app takes (CUDA graphs on CUDA); where that is not the
    module path, with the module path too, and if asked with the step compiled first. Each
    step other than the modules' also gets its largest logit difference to them."""
    attached = model.text.one_token
    variants = {"decode_tps": attached}
    if attached is not None:
        variants["decode_modules_tps"] = None
    if compile_step and isinstance(attached, GraphDecoder):
        variants["decode_compiled_tps"] = GraphDecoder(model.text, attached.capture,
                                                       compile=True)
    device, result = model.device, {}
    for key, step in variants.items():
        model.text.one_token = step
        _decode_speed(device, session, prompt, sizes)  # captures or compiles, untimed
        result[key] = [_decode_speed(device, session, prompt, sizes) for _ in range(sizes.runs)]
        if step is not None:  # at a position of the same key bucket as the decoding's
            result[key.replace("_tps", "_difference")] = step_difference(
                model, session, prompt[: sizes.decode_prompt + 1])
    model.text.one_token = attached
    return result


def _decode_speed(device, session, prompt, sizes: ShapeSizes) -> float:
    session.truncate(0)
    session.prefill(prompt[: sizes.decode_prompt])
    seconds = _timed(device, lambda: list(session.generate_ids(sizes.decode_tokens)))
    return sizes.decode_tokens / seconds


def step_difference(model: Model, session, prompt: list[int]) -> float:
    """The largest difference between the logits of the model's one-token step and of the
    module path for the same token, relative to the largest logit. Both store the token's keys
    at the same place, so one may follow the other."""
    session.truncate(0)
    session.prefill(prompt[:-1])
    attached, logits = model.text.one_token, []
    for step in (attached, None):
        model.text.one_token = step
        hidden = model.forward_chunk(prompt[-1:], len(prompt) - 1, [], [], 0, session.cache)
        logits.append(model.text.project(hidden[0, -1]))
    model.text.one_token = attached
    return float((logits[0] - logits[1]).abs().max() / logits[1].abs().max())


def describe_step(step) -> str:
    return "modules" if step is None else step.describe()


def _timed(device: torch.device, action) -> float:
    synchronize(device)
    start = time.perf_counter()
    action()
    synchronize(device)
    return time.perf_counter() - start


def markdown(shape: str, result: dict) -> str:
    decode, prefill = _median(result["decode_tps"]), _median(result["prefill_tps"])
    reached = decode * result["bytes_per_token"]
    sizes = result["sizes"]
    lines = [
        f"# Gemma 3 {shape} shape, random weights, on {result['device']}",
        "",
        "Written by `gemma-desk-cli bench-shape`; do not edit by hand. "
        f"{result['parameters'] / 1e9:.2f}B parameters in {result['dtype']}, "
        f"quantisation {result['quantization']}; "
        f"the median of {sizes['runs']} run(s) each. Decode step: {result['step']}.",
        "",
        "| | |",
        "|---|---|",
        f"| Decode after {sizes['decode_prompt']} tokens (tokens/s) | {decode:.1f} |",
        f"| Bytes read a token (weights + KV) | {result['bytes_per_token'] / 1e9:.2f} GB |",
        f"| Bandwidth reached by decoding | {reached / 1e9:.0f} GB/s |",
        f"| Bandwidth of a {sizes['copy_bytes'] / 2**20:,.0f} MiB on-device copy "
        f"| {result['copy_bandwidth'] / 1e9:.0f} GB/s |",
        f"| Fraction of that limit | {reached / result['copy_bandwidth']:.0%} |",
    ]
    if "decode_modules_tps" in result:
        lines += [
            f"| Decode with the module path instead (tokens/s) "
            f"| {_median(result['decode_modules_tps']):.1f} |",
            f"| Largest logit difference, step against modules "
            f"| {result['decode_difference']:.1e} |",
        ]
    if "decode_compiled_tps" in result:
        lines += [
            f"| Decode with the step compiled (torch.compile) first (tokens/s) "
            f"| {_median(result['decode_compiled_tps']):.1f} |",
            f"| Largest logit difference, compiled step against modules "
            f"| {result['decode_compiled_difference']:.1e} |",
        ]
    lines += [f"| Prefill {result['prefill_tokens']:,} tokens (tokens/s) | {prefill:.0f} |", ""]
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run_shape_bench(shape: str, out: Path, device: str = "auto", quick: bool = False,
                    compile_step: bool = False, quantization: str = "auto",
                    prefill: int | None = None, log=print) -> dict:
    """prefill: the prompt's length for the prefill figure, if not the sizes' own (32K is
    minutes on a CPU)."""
    config = preset(shape).text_config  # the text decoder only: no images in this bench
    resolved = pick_device(device)
    sizes = QUICK_SHAPE if quick else ShapeSizes()
    if prefill is not None:
        if prefill <= sizes.decode_prompt:
            raise ValueError(f"--prefill must be more than the {sizes.decode_prompt} tokens "
                             "decoding starts after")
        sizes = replace(sizes, prefill=prefill)
    log(f"{shape} shape on {device_name(resolved)}: measuring ...")
    result = measure_shape(config, resolved, pick_dtype(resolved), sizes, compile_step,
                           quantization)
    out.write_text(markdown(shape, result))
    out.with_suffix(".json").write_text(json.dumps({"shape": shape, **result}, indent=2) + "\n")
    return result
