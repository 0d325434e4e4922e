"""Gemma Desk's own Gemma 3 engine: pure PyTorch, never imports Qt.

The public surface:
    load(source=None, *, device="auto", dtype="auto", progress=None) -> Model
    Model.config, Model.tokenizer, Model.logits(ids, pixel_values=None), Model.new_session()
    Session.prefill(ids, progress=None), Session.generate(max_new_tokens, sampling=None),
    Session.truncate(n_tokens), Session.kv_bytes()
"""

from importlib import metadata

try:
    __version__ = metadata.version("gemma-desk")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"


def load(source=None, *, device="auto", dtype="auto", progress=None, **options):
    """Load a Gemma 3 model: None (the embedded 270M), an HF folder, or a .gguf file."""
    from engine.loader import load_model

    return load_model(source, device=device, dtype=dtype, progress=progress, **options)


__all__ = ["__version__", "load"]
