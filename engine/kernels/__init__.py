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
MAX_COLS = 65536  # q8.c keeps one row's scales on the stack


def available() -> bool:
    """A build with a SIMD branch: the plain-C one reads int8 slower than stock fp32/bf16."""
    return simd_bits() > 0


def simd_bits() -> int:
    """512 (AVX-512), 256 (AVX2) or 0 (plain C, or no library at all)."""
    lib = library()
    return 0 if lib is None else lib.q8_simd_bits()


def _ptr(tensor: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())


def _check(q: torch.Tensor, scales: torch.Tensor) -> tuple[int, int]:
    rows, cols = q.shape
    if q.dtype != torch.int8 or scales.dtype != torch.float16 or cols % GROUP or cols > MAX_COLS:
        raise ValueError("int8 weights need int8 values, fp16 scales and rows of 32k values "
                         f"(at most {MAX_COLS:,})")
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


def activation_bits(lib=None) -> int:
    """8 where rounded products round the activations to int8 (AVX-512 VNNI), else 32."""
    return (lib or library()).q8_activation_bits()


def matvec(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor, lib=None,
           rounded: bool = False) -> torch.Tensor:
    """x [tokens, cols] (fp32) -> x @ w.T [tokens, rows] (fp32), weights read once."""
    return Int8Matrix(q, scales, lib, rounded).matvec(x)


class Int8Matrix:
    """Int8 weights checked once, so the per-token call does no more than it must: a decode
    step makes over a hundred of these calls. `rounded`: products may round the activations
    to int8 groups where that is faster (see activation_bits)."""

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, lib=None, rounded: bool = False):
        self.rows, self.cols = _check(q, scales)
        self.q, self.scales = q, scales  # held: the pointers below point into them
        lib = lib or library()
        self._matvec = lib.q8_matvec_rounded if rounded else lib.q8_matvec
        self._lib, self._rounded = lib, rounded
        self._weights = (q.data_ptr(), scales.data_ptr(), self.rows, self.cols)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., cols] -> fp32 [..., rows]: every leading position is one token."""
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.to(torch.float32).contiguous()
        if x.shape[-1] != self.cols:
            raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit weights "
                             f"{self.rows}x{self.cols}")
        y = torch.empty(*x.shape[:-1], self.rows, dtype=torch.float32)
        q, scales, rows, cols = self._weights
        self._matvec(x.data_ptr(), x.numel() // cols, q, scales, rows, cols, y.data_ptr())
        return y

    def dense_row(self, row: int) -> torch.Tensor:
        """One row in fp32 (an embedding lookup), without indexing tensors."""
        if not 0 <= row < self.rows:  # the kernel would read past the weights
            raise ValueError(f"row {row} is outside the matrix's {self.rows:,} rows")
        out = torch.empty(self.cols)
        q, scales, _rows, cols = self._weights
        self._lib.q8_dequantize(q + row * cols, scales + row * (cols // GROUP) * 2, 1, cols,
                                out.data_ptr(), 0)
        return out

    def dense(self, dtype=torch.float32) -> torch.Tensor:
        return dequantize(self.q, self.scales, dtype, self._lib)

    def rows_slice(self, start: int, end: int) -> Int8Matrix:
        return Int8Matrix(self.q[start:end], self.scales[start:end], self._lib, self._rounded)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float, lib=None) -> torch.Tensor:
    """Gemma's RMSNorm of contiguous fp32 rows (weight holds 1 + w), in one call."""
    if x.dtype != torch.float32 or not x.is_contiguous() or weight.dtype != torch.float32:
        raise ValueError("the rmsnorm kernel takes contiguous float32 inputs")
    dim = weight.shape[0]
    out = torch.empty_like(x)
    (lib or library()).step_rmsnorm(x.data_ptr(), x.numel() // dim, dim, weight.data_ptr(), eps,
                                    out.data_ptr())
    return out
