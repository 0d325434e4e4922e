"""The SigLIP vision tower and the Gemma 3 multimodal projector (GEMMA3_REFERENCE.md 2.1, 2.2).

Parameter names are the canonical ones the checkpoint readers produce: `vision_tower.*` (the HF
SigLIP names without the `vision_model.` level) and `multi_modal_projector.*`. As everywhere in
the engine, the Gemma RMSNorm weight (`mm_soft_emb_norm`) holds its multiplier 1 + w; the SigLIP
LayerNorms are ordinary LayerNorms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from engine.checkpoints.base import assign_parameter
from engine.checkpoints.names import canonical_name
from engine.config import VisionConfig
from engine.errors import ModelLoadError
from engine.text_model import RMSNorm

IMAGES_PER_PASS = 4  # bounds the activations (about 100 MB per image at full size in fp32)


class Embeddings(nn.Module):
    """14x14 patches (a strided conv) plus a learned position per patch; no class token."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        size, d = config.patch_size, config.hidden_size
        self.patch_embedding = nn.Conv2d(config.num_channels, d, kernel_size=size, stride=size)
        self.position_embedding = nn.Embedding((config.image_size // size) ** 2, d)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)  # row-major grid
        return patches + self.position_embedding.weight


class SelfAttention(nn.Module):
    """Full bidirectional attention over all patches."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        d = config.hidden_size
        self.n_heads = config.num_attention_heads
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.n_heads, d // self.n_heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)),
                                             heads(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(n, length, d))


class MLP(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        eps = config.layer_norm_eps
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.self_attn = SelfAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Siglip(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.post_layernorm(self.encoder(self.embeddings(pixels)))


class Projector(nn.Module):
    """Average-pool the patch grid to tokens_per_image, RMS-normalise, project to the text width."""

    def __init__(self, config: VisionConfig, text_hidden_size: int, tokens_per_image: int):
        super().__init__()
        patches_per_side = config.image_size // config.patch_size
        tokens_per_side = math.isqrt(tokens_per_image)
        if tokens_per_side**2 != tokens_per_image or patches_per_side % tokens_per_side:
            raise ValueError(f"{tokens_per_image} tokens per image do not tile a "
                             f"{patches_per_side}x{patches_per_side} patch grid")
        self.kernel = patches_per_side // tokens_per_side
        self.mm_input_projection_weight = nn.Parameter(
            torch.zeros(config.hidden_size, text_hidden_size), requires_grad=False)
        self.mm_soft_emb_norm = RMSNorm(config.hidden_size, config.layer_norm_eps)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        n, length, d = patches.shape
        side = math.isqrt(length)
        grid = patches.transpose(1, 2).reshape(n, d, side, side)
        pooled = F.avg_pool2d(grid, self.kernel).flatten(2).transpose(1, 2)
        normed = self.mm_soft_emb_norm(pooled)
        return (normed @ self.mm_input_projection_weight).to(patches.dtype)  # x @ W, no transpose


class VisionTower(nn.Module):
    """pixel_values [N, 3, 896, 896] -> image features [N, tokens_per_image, text_hidden_size]."""

    def __init__(self, vision_config: VisionConfig, text_hidden_size: int,
                 tokens_per_image: int = 256):
        super().__init__()
        self.config = vision_config
        self.vision_tower = Siglip(vision_config)
        self.multi_modal_projector = Projector(vision_config, text_hidden_size, tokens_per_image)

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f"pixel_values must be [N, 3, {size}, {size}], "
                             f"not {list(pixel_values.shape)}")
        weight = self.vision_tower.embeddings.patch_embedding.weight
        pixels = pixel_values.to(weight.device, weight.dtype)
        parts = [self.multi_modal_projector(self.vision_tower(batch))
                 for batch in pixels.split(IMAGES_PER_PASS)]
        return torch.cat(parts)


# -- HF weights -------------------------------------------------------------------------------

SOFT_EMB_NORM = "multi_modal_projector.mm_soft_emb_norm.weight"


def canonical_vision_name(hf_name: str) -> str | None:
    """The canonical name of an HF vision or projector tensor; None for every other tensor."""
    name = canonical_name(hf_name)
    if name is None or not name.startswith(("vision_tower.", "multi_modal_projector.")):
        return None
    return name


def load_vision_weights(module: VisionTower,
                        named_tensors: Iterable[tuple[str, torch.Tensor]]) -> VisionTower:
    """Fill `module` from HF-named tensors (any layout); HF's soft-emb norm w becomes 1 + w."""
    params = dict(module.named_parameters())
    loaded = set()
    for hf_name, tensor in named_tensors:
        name = canonical_vision_name(hf_name)
        if name is None:
            continue
        if name not in params:
            raise ModelLoadError(f"unexpected vision tensor '{hf_name}'")
        expected = params[name]
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelLoadError(f"vision tensor '{hf_name}' has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(expected.shape)}")
        if name == SOFT_EMB_NORM:
            tensor = tensor.float() + 1.0
        device = tensor.device if expected.is_meta else expected.device
        assign_parameter(module, name, tensor.to(device, expected.dtype))
        loaded.add(name)
    missing = sorted(set(params) - loaded)
    if missing:
        raise ModelLoadError(f"{len(missing)} vision tensors are missing, e.g. '{missing[0]}'")
    return module
