"""GGUF Q5_0 weights kept as the file holds them (kernels/q5.c): every build's products and
dense weights against gguf's own dequantisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from engine import kernels
from engine.kernels import Q5Matrix, build, split_q5_0
from tests.test_quant import cpu_has, simd_variants


@pytest.fixture(scope="module", params=sorted(simd_variants()))
def lib(request, tmp_path_factory):
    target = tmp_path_factory.mktemp("q5") / "q5.so"
    assert build.build_library(build.compiler(), simd_variants()[request.param], target)
    return build.open_library(target)


def q5_0(rows: int, cols: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(GGUF Q5_0 blocks of random weights, the dense weights gguf reads back from them)."""
    weights = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    weights[0, :32] = 0.0  # an all-zero group (scale 0)
    blocks = quants.quantize(weights, GGMLQuantizationType.Q5_0)
    dense = quants.dequantize(blocks, GGMLQuantizationType.Q5_0)
    flat = torch.from_numpy(blocks.reshape(-1, kernels.Q5_0_BLOCK).copy())
    return flat, torch.from_numpy(dense.copy())


def test_dense_weights_are_the_files_values(lib):
    blocks, expected = q5_0(37, 160)
    matrix = Q5Matrix(*split_q5_0(blocks, 37, 160), lib)
    assert torch.equal(matrix.dense(), expected)
    assert torch.equal(matrix.dense(torch.bfloat16), expected.to(torch.bfloat16))


@pytest.mark.parametrize("tokens", [1, 3])
def test_products_equal_the_dense_product(lib, tokens):
    blocks, dense = q5_0(300, 640, seed=1)
    matrix = Q5Matrix(*split_q5_0(blocks, 300, 640), lib)
    x = torch.randn(tokens, 640, generator=torch.Generator().manual_seed(2)) * 3
    x[0, 64:96] = 0.0  # a group of zero activations (scale 0)
    expected = x @ dense.T
    # With VNNI the activations are rounded to int16 groups: each off by at most half a step
    # of its group's amax / 32767
    step = x.view(tokens, -1, 32).abs().amax(-1).repeat_interleave(32, -1) / 32767
    bound = step @ dense.abs().T / 2 + 1e-5 * (x.abs() @ dense.abs().T)
    assert ((matrix.matvec(x) - expected).abs() <= bound).all()
    part = matrix.rows_slice(100, 250)
    assert ((part.matvec(x) - expected[:, 100:250]).abs() <= bound[:, 100:250]).all()


def test_the_fast_branch_is_the_vnni_one():
    assert kernels.q5_fast() == cpu_has("avx512_vnni")


def test_bad_shapes_are_refused():
    blocks, _ = q5_0(4, 64)
    nibbles, high, scales = split_q5_0(blocks, 4, 64)
    with pytest.raises(ValueError, match="fifth bits"):
        Q5Matrix(nibbles, high.view(torch.float32), scales)
    with pytest.raises(ValueError, match="fifth bits"):
        Q5Matrix(nibbles, high[:, :1].contiguous(), scales)
    with pytest.raises(ValueError, match="do not fit"):
        Q5Matrix(nibbles, high, scales).matvec(torch.zeros(1, 32))
