"""GGUF dequantisation in torch (vectorised, several times faster than numpy), with the
`gguf` package's numpy code as the fallback for the rarer types."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import torch

# gguf.GGMLQuantizationType values
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 30


def _bytes(data: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # the mapping is read-only and only ever read
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(data).reshape(-1))


def _f16(blocks: torch.Tensor, start: int) -> torch.Tensor:
    """The fp16 value at byte `start` of each block, as fp32 [n_blocks, 1]."""
    return blocks[:, start:start + 2].contiguous().view(torch.float16).float()


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """[n, 16] bytes -> [n, 32] values: low nibbles first, then high nibbles (Q4_0 layout)."""
    return torch.cat([qs & 0x0F, qs >> 4], dim=1)


def _high_bits(qh: torch.Tensor) -> torch.Tensor:
    """[n, 4] bytes of a little-endian uint32 -> [n, 32] bits, as the fifth bit (0 or 16)."""
    bits = (qh[:, :, None] >> torch.arange(8, dtype=torch.uint8)) & 1
    return bits.reshape(-1, 32) << 4


def _q8_0(b):
    return _f16(b, 0) * b[:, 2:].contiguous().view(torch.int8).float()


def _q4_0(b):
    return _f16(b, 0) * (_nibbles(b[:, 2:]).float() - 8)


def _q4_1(b):
    return _f16(b, 0) * _nibbles(b[:, 4:]).float() + _f16(b, 2)


def _q5_0(b):
    return _f16(b, 0) * ((_nibbles(b[:, 6:]) | _high_bits(b[:, 2:6])).float() - 16)


def _q5_1(b):
    return _f16(b, 0) * (_nibbles(b[:, 8:]) | _high_bits(b[:, 4:8])).float() + _f16(b, 2)


def _k_scales(s: torch.Tensor):
    """The 8 six-bit (scale, min) pairs packed in 12 bytes of a Q4_K/Q5_K block."""
    s = s.int()
    low = torch.cat([s[:, 0:4] & 63, (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)], dim=1)
    mins = torch.cat([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], dim=1)
    return low.float(), mins.float()


def _k_nibbles(qs: torch.Tensor) -> torch.Tensor:
    """[n, 128] bytes -> [n, 8, 32]: each 32-byte group gives two sub-blocks (low, high)."""
    groups = qs.reshape(-1, 4, 1, 32)
    return torch.cat([groups & 0x0F, groups >> 4], dim=2).reshape(-1, 8, 32)


def _q4_k(b):
    scale, mins = _k_scales(b[:, 4:16])
    q = _k_nibbles(b[:, 16:144]).float()
    return (_f16(b, 0) * scale)[:, :, None] * q - (_f16(b, 2) * mins)[:, :, None]


def _q5_k(b):
    scale, mins = _k_scales(b[:, 4:16])
    qh = b[:, 16:48]  # bit i of byte l is the fifth bit of sub-block i, element l
    high = ((qh[:, None, :] >> torch.arange(8, dtype=torch.uint8)[None, :, None]) & 1) << 4
    q = (_k_nibbles(b[:, 48:176]) | high).float()
    return (_f16(b, 0) * scale)[:, :, None] * q - (_f16(b, 2) * mins)[:, :, None]


def _q6_k(b):
    ql, qh = b[:, 0:128].reshape(-1, 2, 2, 32), b[:, 128:192].reshape(-1, 2, 1, 32)
    scales = b[:, 192:208].contiguous().view(torch.int8).float().reshape(-1, 2, 4, 2)
    low = torch.cat([ql & 0x0F, ql >> 4], dim=2)  # [n, half, 4, 32]
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 1, 4, 1)
    high = ((qh >> shifts) & 3) << 4
    q = (low | high).float() - 32  # [n, half, 4 quarters, 32]
    q = q.reshape(-1, 2, 4, 2, 16) * scales[..., None]
    return _f16(b, 208)[:, :, None] * q.reshape(-1, 8, 32)


_BLOCKS = {Q8_0: (32, 34, _q8_0), Q4_0: (32, 18, _q4_0), Q4_1: (32, 20, _q4_1),
           Q5_0: (32, 22, _q5_0), Q5_1: (32, 24, _q5_1), Q4_K: (256, 144, _q4_k),
           Q5_K: (256, 176, _q5_k), Q6_K: (256, 210, _q6_k)}


def type_name(qtype: int) -> str:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType(qtype).name
    except ValueError:
        return f"type {qtype}"


@cache
def readable(qtype: int) -> bool:
    """Whether tensors of this type can be dequantised: ours, or the `gguf` package's numpy
    code, asked with one block of zeros (it has no public list of what it reads)."""
    if qtype in (F32, F16, BF16) or qtype in _BLOCKS:
        return True
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    try:
        kind = GGMLQuantizationType(qtype)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            quants.dequantize(np.zeros(GGML_QUANT_SIZES[kind][1], np.uint8), kind)
    except (ValueError, KeyError, NotImplementedError):
        return False
    return True


def dequantize(data: np.ndarray, qtype: int, shape: tuple[int, ...]) -> torch.Tensor:
    """fp32 values of one GGUF tensor, in torch (row-major) shape."""
    n = int(np.prod(shape, dtype=np.int64))
    if qtype in (F32, F16):
        raw = _bytes(data).view(torch.float32 if qtype == F32 else torch.float16)
        values = raw.float()
    elif qtype == BF16:
        values = _bytes(data).view(torch.bfloat16).float()
    elif qtype in _BLOCKS:
        block, size, decode = _BLOCKS[qtype]
        values = decode(_bytes(data).reshape(-1, size)).reshape(-1)
    elif readable(qtype):
        from gguf import GGMLQuantizationType, quants

        kind = GGMLQuantizationType(qtype)  # an int makes gguf fail on its own error message
        values = torch.from_numpy(quants.dequantize(np.asarray(data), kind).reshape(-1))
    else:
        raise ValueError(f"is stored as {type_name(qtype)}, which this app cannot read")
    if values.numel() != n:
        raise ValueError(f"holds {values.numel()} values, its header says {shape}")
    return values.reshape(shape)
