"""GGUF tensor dequantisation into torch tensors."""

from __future__ import annotations

import numpy as np
import torch


def dequantize(data: np.ndarray, qtype, shape: tuple[int, ...]) -> torch.Tensor:
    """fp32 values of one GGUF tensor, in torch (row-major) shape."""
    import gguf

    values = gguf.quants.dequantize(data, qtype)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"holds {values.size} values, its header says {shape}")
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(shape))
