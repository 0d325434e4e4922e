"""Errors the engine raises on purpose: each carries a message a person can act on."""

from contextlib import contextmanager


class EngineError(Exception):
    """Base class for every error the engine reports to the user."""


class ModelLoadError(EngineError):
    """A checkpoint is missing, truncated, of the wrong shape or of an unsupported kind."""


class ContextOverflowError(EngineError):
    """A request does not fit in the session's context; the numbers say by how much."""

    def __init__(self, needed: int, available: int, context_length: int, detail: str = ""):
        self.needed, self.available, self.context_length = needed, available, context_length
        self.overflow = needed - available
        text = (
            f"The request needs {needed:,} tokens but only {available:,} of the "
            f"{context_length:,}-token context are free ({self.overflow:,} too many)."
        )
        super().__init__(f"{text} {detail}".strip())


class ImageError(EngineError):
    """An image file that cannot be used: corrupt, empty, too large, or not an image."""


class DocumentError(EngineError):
    """A document whose text cannot be read: binary, encrypted, or without a text layer."""


class OutOfMemory(EngineError):
    """The device ran out of memory; the session is still usable with less context."""


@contextmanager
def device_memory_guard(device, what: str):
    """Turn the allocators' out-of-memory errors into one clear OutOfMemory message."""
    import torch  # here, not at the top: reading a document needs these errors, not torch

    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise OutOfMemory(_oom_text(device, what)) from exc
    except RuntimeError as exc:  # the CPU allocator reports with a plain RuntimeError
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            raise
        raise OutOfMemory(_oom_text(device, what)) from exc


def _oom_text(device, what: str) -> str:
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.empty_cache()
    return (
        f"Out of memory on {getattr(device, 'type', device)} while {what}. "
        "Try a shorter context length, fewer or smaller attachments, or a smaller model."
    )


class Cancelled(EngineError):
    """Work stopped because the user asked it to."""
