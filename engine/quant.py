"""Weight-only quantisation for inference: smaller weights, so decoding reads fewer bytes.

Decoding one token reads every weight once, so on a CPU its speed is the memory bandwidth
divided by the bytes of the weights. Schemes:

  "int8"  int8 weights in groups of 32 with an fp16 scale each (GGUF's Q8_0 layout), the tied
          embedding/output table included: a quarter of fp32's bytes. Decode steps stream them
          through the C kernel (engine.kernels), every layer of a one-token step in one
          kernel call (engine.quant_step); with AVX-512 VNNI the output layer's products
          round the final hidden state to int8 groups (kernels/q8_rounded.c). Prefill
          dequantises each matrix to the fastest matrix-product dtype of this CPU. Needs a C
          compiler and a SIMD branch of the kernel (AVX2 or AVX-512; its plain-C branch is
          slower than stock bf16), CPU only.
  "bf16"  dense bf16 weights through stock PyTorch: the fallback when the kernel cannot build.
  "none"  the weights as loaded (fp32 on the CPU: the exact parity path).
  "auto"  int8 on the CPU when the kernel builds, else bf16 where its products beat fp32,
          else none; none on CUDA and MPS, which already run bf16.

Activations, norms and the KV cache keep the model's dtype; only the matrices change, and with
int8 a many-token chunk's attention runs in the matrix products' dtype (bf16 on CPUs with AMX:
2.8x faster than fp32 at 512 queries over 4,608 keys).

Measured on a 2-core AVX-512 CPU and left off: torch.compile of the decode step (over 100 s
to compile, graph breaks at the cache writes, no faster); int4 for the tied table (+5 to +12%
perplexity); a kernel thread pool of its own instead of OpenMP (its spinning threads fight
torch's: 41 ms a step against 31); a 4-bit copy of the tied table to screen the output layer,
with int8 only for the rows within 12 of the best estimate. Its pass needs VNNI integer
products to beat int8 (6.5 ms against 9.0) and costs 94 MB more; on confident text a few
hundred rows are then recomputed, but on flat distributions (the bench's random prompts) tens
of thousands are, and a step is no faster (19.7 ms against 19.4); the layers' GGUF Q5_0 blocks
(5.5 bits) kept as they are, with int16 activations and VNNI: unpacking them costs more than the
35% fewer bytes save (3.8-4.9 ms against 3.4-3.6 for q, k, gate and up of 18 layers). Repacked
at load (the file's nibbles, the fifth bits of two groups as one 64-bit mask in lane order, fp16
scales; two VPDPWSSD a pair of groups) they took 2.6-3.2 ms in a first C harness, but built
and measured again against int8 in the same run, 3.6-4.7 ms against 4.0-4.9 with two threads
(1.35x faster with one): both kernels are bound by the vector ports here, not by the bytes.
"""

from __future__ import annotations

import time
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import kernels, quant_cache
from engine.device import cpu_flags
from engine.quant_step import FusedDecoder
from engine.text_model import RMSNorm, rms_norm

SCHEMES = ("int8", "bf16", "none")
STREAM_TOKENS = 4  # up to this many tokens a call streams int8 weights; more take a GEMM
PROJECT_ROWS = 32768  # vocabulary rows dequantised at a time when projecting many positions
GGUF_Q8_0, Q8_0_BLOCK = 8, 34  # gguf type id; bytes per block: fp16 scale + 32 int8
# Matrices that read the same input, stored as one so that a decode step streams them in one
# kernel call (engine.quant_step); their modules hold row views of it.
FUSED = {"self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
         "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj")}


@cache
def bf16_is_faster(tokens: int) -> bool:
    """Is a bf16 matrix product faster than fp32 on this CPU at this width?

    CPUs with AMX run bf16 products several times faster (2.8-4x here): said by their flags,
    so every run decides alike. Elsewhere it depends (AVX512-BF16, emulation, the bytes saved
    at one token), and it is measured once (a few milliseconds); on a busy machine two runs
    may then decide differently.
    """
    if "amx_bf16" in cpu_flags():
        return True
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, 1024, generator=generator)
    w = torch.randn(4096 if tokens == 1 else 1024, 1024, generator=generator)

    def best(dtype):
        xd, wd = x.to(dtype), w.to(dtype)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            F.linear(xd, wd)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(torch.bfloat16) * 1.2 < best(torch.float32)


def gemm_dtype() -> torch.dtype:
    return torch.bfloat16 if bf16_is_faster(128) else torch.float32


def resolve_scheme(scheme: str, device: torch.device) -> str:
    """The scheme that will run: "auto" decided, and int8 without a compiler falling back."""
    if scheme not in ("auto", *SCHEMES):
        raise ValueError(f"Unknown quantization '{scheme}' (choose auto, {', '.join(SCHEMES)})")
    if device.type != "cpu":
        if scheme == "int8":
            raise ValueError("int8 weights run on the CPU only; use bf16 or none on a GPU")
        return "none" if scheme == "auto" else scheme
    if scheme in ("auto", "int8") and kernels.available():
        return "int8"
    if scheme in ("auto", "int8"):
        return "bf16" if bf16_is_faster(1) else "none"
    return scheme


# -- modules -------------------------------------------------------------------------------


class Int8Linear(nn.Module):
    def __init__(self, q: torch.Tensor, scales: torch.Tensor):
        super().__init__()
        self.out_features, self.in_features = q.shape
        # A plain attribute, not buffers: .to()/.float() must never swap the tensors the
        # kernel holds pointers into (nothing here is ever saved).
        self.matrix = kernels.Int8Matrix(q, scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A decode step makes over a hundred of these calls: the streaming path stays lean.
        if x.numel() <= STREAM_TOKENS * self.in_features:
            return self.matrix.matvec(x).to(x.dtype)
        dtype = gemm_dtype()
        return F.linear(x.to(dtype), self.matrix.dense(dtype)).to(x.dtype)


class Int8TiedEmbedding(nn.Module):
    """The token table, read as embedding rows and, tied, as the output layer."""

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        # see Int8Linear; the output layer's products may round the final hidden state to
        # int8 groups (kernels/q8_rounded.c: faster, and no measurable loss there)
        self.matrix = kernels.Int8Matrix(q, scales, rounded=True)
        # Not the table: code that asks for the table's dtype and device (TextModel.embed_scale,
        # Model.__init__) gets the dtype the rest of the model computes in.
        self.weight = torch.empty(0, dtype=dtype, device=q.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q, scales = self.matrix.q[ids], self.matrix.scales[ids]
        dense = q.float() * scales.float().repeat_interleave(kernels.GROUP, dim=-1)
        return dense.to(self.weight.dtype)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [.., d] -> fp32 logits [.., vocab]."""
        vocab, d = self.matrix.rows, self.matrix.cols
        if hidden.numel() <= STREAM_TOKENS * d:
            return self.matrix.matvec(hidden)
        flat = hidden.reshape(-1, d)
        dtype = gemm_dtype()
        x = flat.to(dtype)
        logits = torch.empty(flat.shape[0], vocab, dtype=torch.float32)
        for start in range(0, vocab, PROJECT_ROWS):
            end = min(start + PROJECT_ROWS, vocab)
            logits[:, start:end] = F.linear(x, self.matrix.rows_slice(start, end).dense(dtype))
        return logits.reshape(*hidden.shape[:-1], vocab)


class KernelRMSNorm(nn.Module):
    """The text model's RMSNorm in one kernel call (same fp32 arithmetic): at one token its
    eight small tensor operations cost more than the arithmetic. Holds the original's weight."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.eps, self.weight = norm.eps, norm.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and x.is_contiguous() and not self.weight.is_meta:
            return kernels.rmsnorm(x, self.weight, self.eps)
        return rms_norm(x, self.weight, self.eps)


class HalfLinear(nn.Module):
    """Stock PyTorch: bf16 weights, inputs cast to bf16 for the product only."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight).to(x.dtype)


class HalfTiedEmbedding(nn.Module):
    def __init__(self, table: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("table", table.to(torch.bfloat16))
        self.weight = torch.empty(0, dtype=dtype, device=table.device)  # see Int8TiedEmbedding

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.table).to(self.weight.dtype)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden.to(torch.bfloat16), self.table).float()


# -- swapping them in ----------------------------------------------------------------------


def quantize_for_inference(model, scheme: str = "auto", checkpoint=None) -> str:
    """Swap the text model's matrices for quantised ones in place; returns the scheme applied.

    `checkpoint` (optional) lets Q8_0 tensors of a GGUF file be taken over as they are.
    """
    applied = quantize_text(model.text, scheme, checkpoint, model.dtype)
    model.quantization = applied
    return applied


def quantize_text(text, scheme: str, checkpoint=None, dtype: torch.dtype | None = None,
                  device: torch.device | None = None) -> str:
    """Works on a loaded TextModel and on one still on the meta device (weights are then read
    from `checkpoint`, onto `device`), so a loader can build quantised matrices without an
    fp32 copy of them."""
    embed = text.embed_tokens.weight
    device = device or (torch.device("cpu") if embed.is_meta else embed.device)
    dtype = dtype or embed.dtype
    applied = resolve_scheme(scheme, device)
    if applied == "none":
        return applied
    if applied == "int8":
        gemm_dtype()  # measured now, while loading, not inside the first prefill
    int8 = applied == "int8"
    targets = {f"{name}.weight": module for name, module in text.named_modules()
               if isinstance(module, nn.Linear)}
    targets["embed_tokens.weight"] = text.embed_tokens
    if int8:
        weights = _int8_weights(text, targets, checkpoint, device)
    else:
        weights = {name: _weight(module.weight, name, checkpoint, applied, device)
                   for name, module in targets.items()}
    for name in targets:
        if name != "embed_tokens.weight":
            module = Int8Linear(*weights[name]) if int8 else HalfLinear(weights[name])
            _replace(text, name.removesuffix(".weight"), module)
    if int8:  # the kernel library is there
        for name, module in list(text.named_modules()):
            if isinstance(module, RMSNorm):
                _replace(text, name, KernelRMSNorm(module))
        for layer in text.layers:  # prefill's attention in the matrix products' dtype too
            layer.self_attn.chunk_dtype = gemm_dtype()
        if FusedDecoder.supports(text.config, dtype):
            text.one_token = FusedDecoder(text, {
                i: tuple(kernels.Int8Matrix(*weights[f"layers.{i}.{fused}.weight"])
                         for fused in FUSED)
                for i in range(len(text.layers))})
    table = weights["embed_tokens.weight"]
    table = Int8TiedEmbedding(*table, dtype) if int8 else HalfTiedEmbedding(table, dtype)
    text.embed_tokens = table
    text.project = table.project  # shadows TextModel.project on this instance
    return applied


def _int8_weights(text, targets: dict, checkpoint, device) -> dict:
    """Every matrix as (int8, scales): q/k/v and gate/up stored as one each (FUSED), plus row
    views of them for their modules; taken from the prepared cache when it holds them all."""
    source = Path(checkpoint.path) if checkpoint is not None else None
    layers = range(len(text.layers))
    stored = quant_cache.load(source, "int8")
    wanted = {f"layers.{i}.{fused}.weight" for i in layers for fused in FUSED}
    wanted |= set(targets) - {f"layers.{i}.{part}.weight" for i in layers
                              for parts in FUSED.values() for part in parts}
    if stored is None or set(stored) != wanted:
        stored = {name: _weight(module.weight, name, checkpoint, "int8", device)
                  for name, module in targets.items()}
        for i in layers:
            for fused, parts in FUSED.items():
                pieces = [stored.pop(f"layers.{i}.{part}.weight") for part in parts]
                stored[f"layers.{i}.{fused}.weight"] = tuple(map(torch.cat, zip(*pieces)))
        quant_cache.save(source, "int8", stored)
    views = {}
    for i in layers:
        for fused, parts in FUSED.items():
            q, scales = stored[f"layers.{i}.{fused}.weight"]
            start = 0
            for part in parts:
                rows = text.get_submodule(f"layers.{i}.{part}").out_features
                views[f"layers.{i}.{part}.weight"] = (q[start:start + rows],
                                                      scales[start:start + rows])
                start += rows
    return {**stored, **views}


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    owner_name, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(owner_name) if owner_name else root, leaf, module)


def _weight(weight: torch.Tensor, name: str, checkpoint, scheme: str, device: torch.device):
    """The matrix in the scheme's form: (int8, scales) for int8, a dense tensor for bf16."""
    if scheme == "int8":
        taken = _gguf_q8_0(checkpoint, name)
        if taken is not None:
            return taken
    if weight.is_meta:
        if checkpoint is None:
            raise ValueError(f"'{name}' is not loaded and no checkpoint was given to read it")
        weight = checkpoint.read(name, torch.float32, device)
    return kernels.quantize(weight) if scheme == "int8" else weight.to(torch.bfloat16)


def _gguf_q8_0(checkpoint, name: str):
    """A GGUF Q8_0 tensor split into (int8, fp16 scales) without requantising, else None."""
    if checkpoint is None or not hasattr(checkpoint, "gguf_tensor"):
        return None
    tensor = checkpoint.gguf_tensor(name)
    if tensor.qtype != GGUF_Q8_0:
        return None
    rows, cols = tensor.shape
    with warnings.catch_warnings():  # the mapping is read-only; it is only copied from
        warnings.simplefilter("ignore", UserWarning)
        blocks = torch.from_numpy(np.asarray(tensor.data)).reshape(-1, Q8_0_BLOCK)
    scales = blocks[:, :2].contiguous().view(torch.float16).reshape(rows, cols // kernels.GROUP)
    q = blocks[:, 2:].contiguous().view(torch.int8).reshape(rows, cols)
    return q, scales
