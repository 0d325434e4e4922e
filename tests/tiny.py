"""Tiny random Gemma 3 checkpoints built with transformers (the reference oracle, tests only)."""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_OVERRIDES = dict(
    vocab_size=1000,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=8,  # 0-4 local, 5 global, 6-7 local: the 5:1 pattern, ending local
    num_attention_heads=4,
    num_key_value_heads=2,  # GQA
    head_dim=32,  # differs from hidden / heads = 16
    query_pre_attn_scalar=24,  # differs from head_dim
    sliding_window=16,  # shorter than the test prompts
    max_position_embeddings=4096,
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
)


def text_config(**overrides):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(**{**TEXT_OVERRIDES, **overrides})


def build_text_model(path: Path, seed: int = 0, **overrides) -> Path:
    """A Gemma3ForCausalLM with random weights (norms too), saved with save_pretrained."""
    from transformers import Gemma3ForCausalLM

    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(text_config(**overrides)).eval()
    _randomise_norms(model)
    model.save_pretrained(path)
    return path


def multimodal_config(**text_overrides):
    from transformers import Gemma3Config, SiglipVisionConfig

    text = text_config(vocab_size=262208, sliding_window=300, **text_overrides)
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=896,
        patch_size=14,
        layer_norm_eps=1e-6,
        vision_use_head=False,
    )
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=256)


def build_multimodal_model(path: Path, seed: int = 0, **text_overrides) -> Path:
    """A Gemma3ForConditionalGeneration with a small SigLIP, every weight random."""
    from transformers import Gemma3ForConditionalGeneration

    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(multimodal_config(**text_overrides)).eval()
    _randomise_norms(model)
    model.save_pretrained(path)
    return path


def _randomise_norms(model: torch.nn.Module) -> None:
    """HF initialises Gemma norms to zero (multiplier 1) and the projector, vision biases and
    LayerNorms to constants: random values everywhere catch a missing +1 or a zeroed path."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "vision_tower" in name or "mm_input_projection" in name:
                base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
                param.copy_(base + torch.randn_like(param) * 0.2)
            elif name.endswith("norm.weight"):
                param.copy_(torch.randn_like(param) * 0.3)
