"""Weight-only int8 (C kernel) and the stock bf16 fallback: kernels against torch, models
against fp32, and perplexity of the real 270M within 1% of full precision."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import engine
from engine import kernels, quant, quant_cache
from engine.checkpoints import open_checkpoint
from engine.kernels import build
from engine.text_model import TextModel

DATA = Path(__file__).parent / "data"


def simd_variants() -> dict[str, list[str]]:
    """Flags that select each branch of q8.c's dot product on this machine."""
    variants = {"native": ["-O3", "-march=native"], "plain C": ["-O3"]}
    if platform.machine().lower() in ("x86_64", "amd64"):
        variants["avx2"] = ["-O3", "-mavx2", "-mfma", "-mf16c"]
    if cpu_has("avx512_vnni"):  # native then rounds activations: keep the float branch tested
        variants["avx512 float"] = ["-O3", "-march=native", "-mno-avx512vnni"]
    return variants


def cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def rounded_products(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x @ w.T with each token's activations rounded to int8 groups of 32 (scale amax / 127),
    the integer products summed exactly: what q8.c's VNNI branch computes."""
    groups = x.reshape(x.shape[0], -1, kernels.GROUP)
    step = groups.abs().amax(-1, keepdim=True) / 127
    xq = (groups * torch.where(step > 0, 1 / step, 0.0)).round()
    w = q.double().reshape(q.shape[0], -1, kernels.GROUP)
    sums = torch.einsum("tgk,ngk->tng", xq.double(), w)
    return (sums * scales.double()[None] * step.double()[:, None, :, 0]).sum(-1).float()


def reference_quantize(w: torch.Tensor):
    groups = w.reshape(w.shape[0], -1, kernels.GROUP)
    scales = (groups.abs().amax(-1) / 127).half()
    step = scales.float()[..., None]
    ratios = torch.where(step > 0, groups / step, 0.0)  # a scale that rounds to 0 zeroes all
    return scales, ratios.clamp(-127, 127).reshape(w.shape)


def dense(q, scales):
    return q.float() * scales.float().repeat_interleave(kernels.GROUP, dim=-1)


@pytest.mark.parametrize("variant", sorted(simd_variants()))
def test_every_simd_branch_matches_torch(variant, tmp_path):
    target = tmp_path / "q8.so"
    assert build.build_library(build.compiler(), simd_variants()[variant], target)
    lib = build.open_library(target)
    assert (lib.q8_simd_bits() == 0) == (variant == "plain C")
    w = torch.randn(96, 160, generator=torch.Generator().manual_seed(1))
    q, scales = kernels.quantize(w, lib=lib)
    assert torch.equal(scales, reference_quantize(w)[0])
    assert torch.equal(kernels.dequantize(q, scales, lib=lib), dense(q, scales))
    x = torch.randn(3, 160)  # five groups: the int8 branch's last pair is half empty
    expected = x @ dense(q, scales).T
    assert torch.allclose(kernels.matvec(x, q, scales, lib=lib), expected, rtol=1e-5, atol=1e-4)
    rounds = kernels.activation_bits(lib) == 8
    assert rounds == (variant == "native" and cpu_has("avx512_vnni"))
    if rounds:
        expected = rounded_products(x, q, scales)
        assert not torch.allclose(expected, x @ dense(q, scales).T, rtol=1e-5, atol=1e-4)
    got = kernels.matvec(x, q, scales, lib=lib, rounded=True)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_quantize_rounds_like_q8_0_including_zero_and_tiny_groups():
    w = torch.randn(4, 128, generator=torch.Generator().manual_seed(2))
    w[0, :32] = 0.0  # a zero group: scale 0, values 0
    w[1, 32:64] *= 1e-7  # scales in fp16's subnormal range
    w[2, 64:96] *= 1e4
    q, scales = kernels.quantize(w)
    ref_scales, ratios = reference_quantize(w)
    assert torch.equal(scales, ref_scales)
    assert (q.float() - ratios).abs().max() <= 0.5 + 1e-3  # round to nearest, ties either way
    assert torch.equal(q[0, :32], torch.zeros(32, dtype=torch.int8))
    bf16 = kernels.dequantize(q, scales, torch.bfloat16)
    assert torch.equal(bf16, dense(q, scales).bfloat16())


def test_one_row_dequantised_alone_equals_its_row_of_the_whole():
    matrix = kernels.Int8Matrix(*kernels.quantize(torch.randn(10, 96)))
    assert torch.equal(matrix.dense_row(7), matrix.dense()[7])
    for outside in (-1, 10):
        with pytest.raises(ValueError, match="outside the matrix"):
            matrix.dense_row(outside)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="groups of 32"):
        kernels.quantize(torch.randn(4, 40))
    q, scales = kernels.quantize(torch.randn(4, 64))
    with pytest.raises(ValueError, match="do not fit"):
        kernels.matvec(torch.randn(1, 32), q, scales)
    with pytest.raises(ValueError, match="scales of shape"):
        kernels.dequantize(q, scales[:, :1].contiguous())


def test_linear_streams_a_few_tokens_and_multiplies_many():
    generator = torch.Generator().manual_seed(3)
    w = torch.randn(96, 64, generator=generator)
    layer = quant.Int8Linear(*kernels.quantize(w))
    exact = dense(layer.matrix.q, layer.matrix.scales)
    few = torch.randn(1, 2, 64, generator=generator)
    assert torch.allclose(layer(few), F.linear(few, exact), rtol=1e-5, atol=1e-4)
    many = torch.randn(1, quant.STREAM_TOKENS + 5, 64, generator=generator)
    expected = F.linear(many, exact)
    # bf16 products where this CPU runs them faster: within bf16's rounding
    assert (layer(many) - expected).norm() / expected.norm() < 1e-2


def test_amx_cpus_take_bf16_products_by_their_flags_without_timing(monkeypatch):
    def no_timing(*args, **kwargs):
        raise AssertionError("timed a product")

    quant.bf16_is_faster.cache_clear()
    try:
        monkeypatch.setattr(quant, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
        monkeypatch.setattr(quant.F, "linear", no_timing)
        assert quant.bf16_is_faster(128) and quant.bf16_is_faster(1)
    finally:
        quant.bf16_is_faster.cache_clear()


def test_resolve_scheme():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert quant.resolve_scheme("auto", cpu) == "int8"  # this machine has a compiler
    assert quant.resolve_scheme("none", cpu) == "none"
    assert quant.resolve_scheme("auto", cuda) == "none"
    assert quant.resolve_scheme("bf16", cuda) == "bf16"
    with pytest.raises(ValueError, match="CPU only"):
        quant.resolve_scheme("int8", cuda)
    with pytest.raises(ValueError, match="Unknown quantization 'int3'"):
        quant.resolve_scheme("int3", cpu)


# -- whole models ---------------------------------------------------------------------------


def tiny_prompt() -> list[int]:
    return torch.randint(3, 1000, (40,), generator=torch.Generator().manual_seed(4)).tolist()


def close_logits(a, b) -> bool:
    """Within a few percent (random tiny weights: int8 groups err about 3%, bf16 about 1%)."""
    return bool((a - b).norm() / b.norm() < 0.05)


def check_sessions_decode(model, ids, full):
    session = model.new_session(context_length=256, chunk_size=16)
    session.prefill(ids[:-1])
    session.prefill(ids[-1:])  # one token: the streaming path
    assert close_logits(session._next_logits, full[-1])
    assert len(list(session.generate_ids(5))) <= 5


@pytest.mark.parametrize("scheme", ["int8", "bf16"])
def test_tiny_model_quantized_stays_close_to_fp32(scheme, tiny_text_checkpoint):
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    ids = tiny_prompt()
    full = model.logits(ids)
    scale = model.text.embed_scale
    assert quant.quantize_for_inference(model, scheme) == scheme
    assert model.quantization == scheme
    assert model.text.embed_scale == scale  # still sqrt(d) in fp32
    expected = quant.Int8Linear if scheme == "int8" else quant.HalfLinear
    assert isinstance(model.text.layers[0].mlp.down_proj, expected)
    norm = model.text.layers[0].input_layernorm
    assert isinstance(norm, quant.KernelRMSNorm) == (scheme == "int8")
    assert close_logits(model.logits(ids), full)
    check_sessions_decode(model, ids, full)


def test_without_a_kernel_the_stock_path_runs(tiny_text_checkpoint, monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    model = engine.load(tiny_text_checkpoint, dtype="float32")
    ids = tiny_prompt()
    full = model.logits(ids)
    applied = quant.quantize_for_inference(model, "int8")
    assert applied == ("bf16" if quant.bf16_is_faster(1) else "none")
    assert close_logits(model.logits(ids), full)
    check_sessions_decode(model, ids, full)


def test_no_compiler_means_no_library(monkeypatch):
    monkeypatch.setattr(build, "compiler", lambda: None)
    build.library.cache_clear()
    try:
        assert build.library() is None
    finally:
        monkeypatch.undo()
        build.library.cache_clear()
    assert kernels.available()  # found again once a compiler is there


def test_a_failing_compiler_leaves_no_file(tmp_path):
    target = tmp_path / "q8.so"
    assert not build.build_library("false", ["-O3"], target)
    assert list(tmp_path.iterdir()) == []


def test_a_model_on_meta_is_quantized_from_its_checkpoint(tiny_text_checkpoint):
    """The loader's path: no fp32 copy of the matrices is ever made."""
    loaded = engine.load(tiny_text_checkpoint, dtype="float32")
    quant.quantize_for_inference(loaded, "int8")
    checkpoint = open_checkpoint(tiny_text_checkpoint)
    with torch.device("meta"):
        text = TextModel(checkpoint.config.text_config)
    assert quant.quantize_text(text, "int8", checkpoint, torch.float32) == "int8"
    for name, _ in list(text.named_parameters()):  # what is left: the norms
        owner, _, leaf = name.rpartition(".")
        value = checkpoint.read(name, torch.float32, torch.device("cpu"))
        setattr(text.get_submodule(owner), leaf, torch.nn.Parameter(value, requires_grad=False))
    assert text.embed_tokens.weight.dtype == torch.float32
    pairs = [(a, b) for a, b in zip(loaded.text.modules(), text.modules()) if hasattr(a, "matrix")]
    assert len(pairs) == 1 + 7 * len(text.layers)
    for a, b in pairs:
        assert torch.equal(a.matrix.q, b.matrix.q) and torch.equal(a.matrix.scales, b.matrix.scales)


def test_meta_model_without_checkpoint_is_an_error(tiny_text_checkpoint):
    config = open_checkpoint(tiny_text_checkpoint).config.text_config
    with torch.device("meta"):
        text = TextModel(config)
    with pytest.raises(ValueError, match="no checkpoint"):
        quant.quantize_text(text, "int8", None, torch.float32)


# -- the real 270M ---------------------------------------------------------------------------


def test_real_q8_0_table_is_taken_over_exactly(real_gguf):
    checkpoint = open_checkpoint(real_gguf)
    q, scales = quant._gguf_q8_0(checkpoint, "embed_tokens.weight")
    table = checkpoint.read("embed_tokens.weight", torch.float32, torch.device("cpu"))
    assert torch.equal(dense(q, scales), table)


def perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
    return math.exp(-logprobs.gather(1, torch.tensor(ids[1:])[:, None]).mean().item())


def streamed_perplexity(model, ids: list[int]) -> float:
    """One token at a time through a session: the decode path."""
    session = model.new_session(context_length=1024)
    rows = []
    for token in ids:
        session.prefill([token])
        rows.append(session._next_logits)
    return perplexity(torch.stack(rows), ids)


@pytest.fixture(scope="module")
def text_ids() -> list[int]:
    """tests/data/perplexity.txt as the 270M's tokenizer cuts it (571 tokens, BOS first)."""
    return json.loads((DATA / "perplexity_ids.json").read_text())


@pytest.fixture(scope="module")
def full_precision(real_gguf, text_ids):
    model = engine.load(real_gguf, dtype="float32")
    return perplexity(model.logits(text_ids), text_ids), streamed_perplexity(model, text_ids[:32])


@pytest.mark.parametrize("scheme", ["auto", "bf16"])
def test_real_model_perplexity_within_one_percent(scheme, real_gguf, text_ids, full_precision):
    """The default load (int8 here) and the stock fallback, both as engine.load builds them."""
    model = engine.load(real_gguf, quantization=scheme)
    assert model.quantization == ("int8" if scheme == "auto" else scheme)
    prefill_ppl = perplexity(model.logits(text_ids), text_ids)
    stream_ppl = streamed_perplexity(model, text_ids[:32])
    reference, reference_stream = full_precision
    assert 10 < reference < 40  # real text, not noise
    assert abs(prefill_ppl / reference - 1) < 0.01
    assert abs(stream_ppl / reference_stream - 1) < 0.01


# -- the prepared-weights cache ------------------------------------------------------------


def test_prepared_matrices_are_mapped_back_and_refreshed_when_the_source_changes(
        tmp_path, monkeypatch):
    monkeypatch.setattr(quant_cache, "cache_root", lambda: tmp_path / "prepared")
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF stand-in")
    matrices = {"a.weight": kernels.quantize(torch.randn(64, 96)),
                "b.weight": kernels.quantize(torch.randn(8, 32))}
    assert quant_cache.load(source, "int8") is None
    assert quant_cache.save(source, "int8", matrices)
    mapped = quant_cache.load(source, "int8")
    for name, (q, scales) in matrices.items():
        assert torch.equal(mapped[name][0], q) and torch.equal(mapped[name][1], scales)
    assert quant_cache.load(source, "bf16") is None  # another scheme
    os.utime(source, ns=(0, 12345))
    assert quant_cache.load(source, "int8") is None  # the file changed: convert again


def test_a_damaged_or_oversized_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setattr(quant_cache, "cache_root", lambda: tmp_path / "prepared")
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF stand-in")
    assert quant_cache.save(source, "int8", {"a.weight": kernels.quantize(torch.randn(4, 64))})
    weights = next((tmp_path / "prepared").iterdir()) / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short
    assert quant_cache.load(source, "int8") is None
    monkeypatch.setattr(quant_cache, "MAX_BYTES", 10)
    assert not quant_cache.save(source, "int8", {"a.weight": kernels.quantize(torch.randn(4, 64))})


def test_the_norm_kernel_equals_the_model_norm():
    from engine.text_model import RMSNorm

    norm = RMSNorm(640, 1e-6)
    norm.weight.data = torch.randn(640, generator=torch.Generator().manual_seed(5))
    x = torch.randn(3, 640, generator=torch.Generator().manual_seed(6)) * 40
    fast = quant.KernelRMSNorm(norm)
    assert torch.allclose(fast(x), norm(x), rtol=1e-6, atol=1e-6)
    assert torch.equal(fast(x.double()), norm(x.double()))  # other dtypes: the torch path
