"""The user's settings: one dataclass, kept in an INI file in the config folder via QSettings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from PySide6.QtCore import QSettings

from app.paths import config_dir

DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass
class Settings:
    device: str = "auto"
    context_length: int = 0  # 0: the largest that fits in memory (the engine decides)
    temperature: float = 1.0  # Gemma's recommended sampling
    top_k: int = 64
    top_p: float = 0.95
    min_p: float = 0.0
    max_answer_tokens: int = 1024
    seed: int = -1  # -1: a new random answer each time
    system_prompt: str = ""  # the default for new chats; each chat may have its own
    pan_and_scan: bool = True  # crops for wide or tall pictures only (more tokens, finer detail)
    theme: str = "system"  # "system", "light" or "dark"
    font_size: int = 10
    model_source: str = ""  # "": the bundled Gemma 3 270M
    mmproj: str = ""  # optional vision projector for a GGUF model
    use_server: bool = False  # chats go to the server below instead of the local model
    server_url: str = ""  # an OpenAI-compatible API, e.g. http://gpu-box:8000/v1
    server_model: str = ""  # the model name the server serves
    server_context_length: int = 0  # 0: as the server reports it (its API key: app.secrets)
    model_folders: list[str] = field(default_factory=list)  # extra folders to look for models
    first_run_done: bool = False
    sidebar_visible: bool = True
    draft_text: str = ""  # what the composer held when the app was closed
    draft_files: list[str] = field(default_factory=list)

    def sampling(self) -> dict | None:
        """Sampling parameters for the worker; None means greedy (temperature 0)."""
        if self.temperature <= 0:
            return None
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "min_p": self.min_p, "seed": None if self.seed < 0 else self.seed}

    def validated(self) -> Settings:
        """A copy with every value inside its allowed range (a hand-edited file can hold any)."""
        s = Settings(**asdict(self))
        s.device = s.device if s.device in DEVICES else "auto"
        s.theme = s.theme if s.theme in ("system", "light", "dark") else "system"
        s.context_length = max(0, s.context_length)
        s.server_context_length = max(0, s.server_context_length)
        s.use_server = s.use_server and bool(s.server_url and s.server_model)
        s.temperature = min(max(s.temperature, 0.0), 2.0)
        s.top_k = max(0, s.top_k)
        s.top_p = min(max(s.top_p, 0.0), 1.0)
        s.min_p = min(max(s.min_p, 0.0), 1.0)
        s.max_answer_tokens = min(max(s.max_answer_tokens, 1), 32768)
        s.font_size = min(max(s.font_size, 7), 24)
        return s


def _store() -> QSettings:
    return QSettings(str(config_dir() / "settings.ini"), QSettings.Format.IniFormat)


def load() -> Settings:
    stored, values = _store(), {}
    for f in fields(Settings):
        raw = stored.value(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = _convert(raw, type(getattr(Settings(), f.name)))
        except (TypeError, ValueError):
            continue  # a damaged value falls back to its default
    return Settings(**values).validated()


def save(settings: Settings) -> None:
    stored = _store()
    for name, value in asdict(settings).items():
        stored.setValue(name, json.dumps(value) if isinstance(value, list) else value)
    stored.sync()


def _convert(raw, kind):
    if kind is bool:
        return raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1", "yes")
    if kind is list:
        value = json.loads(raw) if isinstance(raw, str) else list(raw)
        return [str(v) for v in value]
    return kind(raw)
