"""Model configuration: dataclasses whose field names are the HF config.json keys.

Hub config.json files are sparse (transformers fills the rest from class defaults), so every
field carries the Gemma3TextConfig / SiglipVisionConfig default. Two key generations exist:
`rope_scaling` / `rope_local_base_freq` / `sliding_window_pattern` (transformers 4.50) and
`rope_parameters` / `layer_types` (newer); `from_hf_dict` reads both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SLIDING = "sliding_attention"
FULL = "full_attention"
GEMMA3_TYPES = ("gemma3", "gemma3_text")  # config.json model_type of a Gemma 3 checkpoint


@dataclass
class TextConfig:
    vocab_size: int = 262208
    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_hidden_layers: int = 26
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int = 256
    query_pre_attn_scalar: float = 256  # attention scale is its inverse square root
    sliding_window: int = 4096
    max_position_embeddings: int = 131072
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0  # global (full-attention) layers
    rope_local_base_freq: float = 10_000.0  # local (sliding) layers
    rope_scaling: dict | None = None  # linear scaling, applied on global layers only
    layer_types: list[str] = field(default_factory=list)  # filled by __post_init__
    final_logit_softcapping: float | None = None  # None for every Gemma 3 checkpoint
    pad_token_id: int = 0
    eos_token_id: int | list[int] = field(default_factory=lambda: [1, 106])
    bos_token_id: int = 2

    def __post_init__(self) -> None:
        """Values no model has fail here, not as a TypeError deep inside the model code."""
        _require_positive(self, _TEXT_SIZES, int)
        _require_positive(self, _TEXT_SCALES, (int, float))
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) is not a "
                             f"multiple of num_key_value_heads ({self.num_key_value_heads})")
        if not self.layer_types:
            self.layer_types = default_layer_types(self.num_hidden_layers)
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"layer_types lists {len(self.layer_types)} layers, "
                f"num_hidden_layers is {self.num_hidden_layers}"
            )
        if unknown := set(self.layer_types) - {SLIDING, FULL}:
            raise ValueError(f"layer_types holds {sorted(unknown)}; Gemma 3 has only "
                             f"{SLIDING} and {FULL}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, dict):
            raise ValueError(f"rope_scaling is {self.rope_scaling!r}, not a mapping")
        if self.rope_scaling_factor <= 0:  # also refuses scaling kinds Gemma 3 does not use
            raise ValueError(f"the RoPE scaling factor is {self.rope_scaling_factor}")

    @property
    def rope_scaling_factor(self) -> float:
        if not self.rope_scaling:
            return 1.0
        kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "linear"))
        if kind not in ("linear", "default"):
            raise ValueError(f"Unsupported RoPE scaling '{kind}' (Gemma 3 uses linear)")
        return float(self.rope_scaling.get("factor", 1.0)) if kind == "linear" else 1.0

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == SLIDING

    @property
    def kv_bytes_per_token_per_layer_bf16(self) -> int:
        return 2 * self.num_key_value_heads * self.head_dim * 2


@dataclass
class VisionConfig:
    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_hidden_layers: int = 27
    num_attention_heads: int = 16
    image_size: int = 896
    patch_size: int = 14
    num_channels: int = 3
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _require_positive(self, _VISION_SIZES, int)
        _require_positive(self, ("layer_norm_eps",), (int, float))


@dataclass
class ModelConfig:
    text_config: TextConfig
    vision_config: VisionConfig | None = None  # None for the text-only 270M and 1B
    mm_tokens_per_image: int = 256
    boi_token_index: int = 255999
    eoi_token_index: int = 256000
    image_token_index: int = 262144

    @property
    def sees_images(self) -> bool:
        return self.vision_config is not None


_TEXT_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "head_dim", "sliding_window",
               "max_position_embeddings")
_TEXT_SCALES = ("query_pre_attn_scalar", "rms_norm_eps", "rope_theta", "rope_local_base_freq")
_VISION_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "image_size", "patch_size", "num_channels")


def _require_positive(config, names: tuple[str, ...], kinds) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
            raise ValueError(f"{name} is {value!r}, not a positive number")


def default_layer_types(n_layers: int, pattern: int = 6) -> list[str]:
    """Five local layers then one global: layer i is global iff (i + 1) % pattern == 0."""
    return [FULL if (i + 1) % pattern == 0 else SLIDING for i in range(n_layers)]


def _known(cls, data: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def text_config_from_hf(data: dict) -> TextConfig:
    """Both key generations: rope_parameters/layer_types, or rope_scaling/sliding_window_pattern."""
    data = dict(data)
    params = data.pop("rope_parameters", None)
    if params:
        if FULL in params or SLIDING in params:
            full, local = params.get(FULL, {}), params.get(SLIDING, {})
        else:  # one set of parameters for every layer type
            full, local = params, {}
        data.setdefault("rope_theta", full.get("rope_theta", TextConfig.rope_theta))
        data.setdefault("rope_local_base_freq", local.get("rope_theta", 10_000.0))
        if full.get("rope_type", "default") != "default":
            factor = full.get("factor", 1.0)
            data["rope_scaling"] = {"rope_type": full["rope_type"], "factor": factor}
    pattern = data.get("sliding_window_pattern") or data.get("_sliding_window_pattern") or 6
    config = TextConfig(**_known(TextConfig, data))
    if not data.get("layer_types"):
        config.layer_types = default_layer_types(config.num_hidden_layers, int(pattern))
    return config


def _section(data: dict, key: str) -> dict:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{key} is {section!r}, not a set of settings")
    return section


def config_from_hf(data: dict) -> ModelConfig:
    """A config.json of Gemma3ForCausalLM (text only) or Gemma3ForConditionalGeneration."""
    if "text_config" not in data:
        return ModelConfig(text_config=text_config_from_hf(data))
    vision = _section(data, "vision_config")
    return ModelConfig(
        text_config=text_config_from_hf(_section(data, "text_config")),
        vision_config=VisionConfig(**_known(VisionConfig, vision)) if vision else None,
        **_known(ModelConfig, {k: v for k, v in data.items() if k.endswith(("_index", "_image"))}),
    )


PRESETS: dict[str, dict] = {
    "270m": dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                 num_attention_heads=4, num_key_value_heads=1, sliding_window=512,
                 max_position_embeddings=32768),
    "1b": dict(vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
               num_attention_heads=4, num_key_value_heads=1, sliding_window=512,
               max_position_embeddings=32768),
    "4b": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
               num_attention_heads=8, num_key_value_heads=4, sliding_window=1024,
               rope_scaling={"rope_type": "linear", "factor": 8.0}),
    "12b": dict(hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                num_attention_heads=16, num_key_value_heads=8, sliding_window=1024,
                rope_scaling={"rope_type": "linear", "factor": 8.0}),
    "27b": dict(hidden_size=5376, intermediate_size=21504, num_hidden_layers=62,
                num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                query_pre_attn_scalar=168, sliding_window=1024,
                rope_scaling={"rope_type": "linear", "factor": 8.0}),
}


def preset(name: str) -> ModelConfig:
    """The configuration of one released size: "270m", "1b", "4b", "12b" or "27b"."""
    key = name.lower().replace("gemma-3-", "").replace("gemma3-", "")
    if key not in PRESETS:
        raise ValueError(f"Unknown Gemma 3 size '{name}'; known: {', '.join(PRESETS)}")
    vision = VisionConfig() if key in ("4b", "12b", "27b") else None
    return ModelConfig(text_config=TextConfig(**PRESETS[key]), vision_config=vision)


def text_config_from_gguf(meta: dict) -> TextConfig:
    """GGUF metadata (keys without the "gemma3." prefix) plus what llama.cpp does not store.

    Not stored: the local RoPE base (10000), the 5:1 layer pattern, and query_pre_attn_scalar,
    which llama.cpp derives from the layer count (62 layers = 27B: hidden / heads).
    """
    n_layers = int(meta["block_count"])
    hidden, heads = int(meta["embedding_length"]), int(meta["attention.head_count"])
    head_dim = int(meta.get("attention.key_length", hidden // heads))
    scaling = None
    if meta.get("rope.scaling.type") == "linear" and float(meta.get("rope.scaling.factor", 1)) != 1:
        scaling = {"rope_type": "linear", "factor": float(meta["rope.scaling.factor"])}
    return TextConfig(
        vocab_size=int(meta["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(meta["feed_forward_length"]),
        num_hidden_layers=n_layers,
        num_attention_heads=heads,
        num_key_value_heads=int(meta.get("attention.head_count_kv", heads)),
        head_dim=head_dim,
        query_pre_attn_scalar=hidden // heads if n_layers == 62 else head_dim,
        sliding_window=int(meta.get("attention.sliding_window", 4096)),
        max_position_embeddings=int(meta.get("context_length", 131072)),
        rms_norm_eps=float(meta.get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(meta.get("rope.freq_base", 1_000_000.0)),
        rope_scaling=scaling,
    )
