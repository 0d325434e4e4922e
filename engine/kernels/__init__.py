"""Weight-only int8 matrix kernels on torch tensors (CPU), from the C library in q8.c.

The format: int8 weights [rows, cols] and one fp16 scale per group of 32 along a row
([rows, cols / 32]), which is GGUF's Q8_0 split into two arrays. Every function here needs
`available()`; engine.quant picks a stock PyTorch path when it is False. `lib` picks another
build of the library (tests check every SIMD branch of q8.c).
"""

from __future__ import annotations

import ctypes

import torch

from engine.kernels.build import library

GROUP = 32


def available() -> bool:
    return library() is not None


def _ptr(tensor: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())


def _check(q: torch.Tensor, scales: torch.Tensor) -> tuple[int, int]:
    rows, cols = q.shape
    if q.dtype != torch.int8 or scales.dtype != torch.float16 or cols % GROUP:
        raise ValueError("int8 weights need int8 values, fp16 scales and rows of 32k values")
    if not (q.is_contiguous() and scales.is_contiguous() and q.device.type == "cpu"):
        raise ValueError("int8 weights must be contiguous CPU tensors")
    if tuple(scales.shape) != (rows, cols // GROUP):
        raise ValueError(f"scales of shape {tuple(scales.shape)} do not fit weights {rows}x{cols}")
    return rows, cols


def quantize(weight: torch.Tensor, lib=None) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 [rows, cols] -> (int8 values, fp16 scales), scale = amax / 127 per group."""
    weight = weight.detach().to("cpu", torch.float32).contiguous()
    rows, cols = weight.shape
    if cols % GROUP:
        raise ValueError(f"rows of {cols} values cannot be cut into groups of {GROUP}")
    q = torch.empty(rows, cols, dtype=torch.int8)
    scales = torch.empty(rows, cols // GROUP, dtype=torch.float16)
    (lib or library()).q8_quantize(_ptr(weight), rows, cols, _ptr(q), _ptr(scales))
    return q, scales


def dequantize(q: torch.Tensor, scales: torch.Tensor, dtype=torch.float32,
               lib=None) -> torch.Tensor:
    """The dense weights in fp32 or bf16 (for prefill's matrix products)."""
    rows, cols = _check(q, scales)
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"int8 weights dequantise to float32 or bfloat16, not {dtype}")
    out = torch.empty(rows, cols, dtype=dtype)
    (lib or library()).q8_dequantize(_ptr(q), _ptr(scales), rows, cols, _ptr(out),
                                     int(dtype == torch.bfloat16))
    return out


def matvec(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor, lib=None) -> torch.Tensor:
    """x [tokens, cols] (fp32) -> x @ w.T [tokens, rows] (fp32), weights read once."""
    rows, cols = _check(q, scales)
    x = x.to(torch.float32).contiguous()
    if x.dim() != 2 or x.shape[1] != cols:
        raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit weights {rows}x{cols}")
    y = torch.empty(x.shape[0], rows, dtype=torch.float32)
    (lib or library()).q8_matvec(_ptr(x), x.shape[0], _ptr(q), _ptr(scales), rows, cols, _ptr(y))
    return y
