"""Canonical tensor names across the HF save layouts.

Text weights appear as `model.*` (Gemma3ForCausalLM), `language_model.model.*` (hub originals
of the multimodal sizes) and `model.language_model.*` (newer transformers). Vision weights as
`vision_tower.vision_model.*` or, from transformers 5, `vision_tower.*`, each with or without a
leading `model.`. All map to one naming so the model code knows a single layout.
"""

from __future__ import annotations

_TEXT_PREFIXES = ("model.language_model.", "language_model.model.", "model.")
_VISION_PREFIXES = ("model.vision_tower.vision_model.", "vision_tower.vision_model.",
                    "model.vision_tower.", "vision_tower.")
_PROJECTOR_PREFIXES = ("model.multi_modal_projector.", "multi_modal_projector.")


def canonical_name(name: str) -> str | None:
    """The canonical name of an HF tensor, or None for tensors the engine does not use."""
    for prefix in _VISION_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix):]
            return None if rest.startswith("head.") else "vision_tower." + rest  # pooling head
    for prefix in _PROJECTOR_PREFIXES:
        if name.startswith(prefix):
            return "multi_modal_projector." + name[len(prefix):]
    if name.endswith("lm_head.weight"):
        return "lm_head.weight"  # tied to the embedding; kept only to compare
    for prefix in _TEXT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return None
