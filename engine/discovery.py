"""Find Gemma 3 checkpoints already on disk: the Hugging Face cache, LM Studio's and Ollama's
model folders, and folders the user added. Reads only headers (config.json, GGUF metadata), never
tensors, and never imports torch, so a scan of a few hundred files takes well under a second.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.config import (
    GEMMA3_TYPES,
    ModelConfig,
    VisionConfig,
    config_from_hf,
    text_config_from_gguf,
)

MAX_DEPTH = 5  # how deep user folders are searched


@dataclass
class FoundModel:
    name: str  # what the model list shows
    path: Path  # an HF folder or a .gguf file: what engine.load() takes
    origin: str  # "Hugging Face cache", "LM Studio", "Ollama" or "Folder"
    size: int  # bytes of weights on disk
    config: ModelConfig
    mmproj: Path | None = None  # vision projector beside a GGUF file

    @property
    def sees_images(self) -> bool:
        return self.config.sees_images or self.mmproj is not None

    @property
    def kind(self) -> str:
        return "gguf" if self.path.suffix.lower() == ".gguf" else "hf"


def discover(extra_folders=(), environ=None, home: Path | None = None) -> list[FoundModel]:
    """Every Gemma 3 checkpoint in the usual places and in `extra_folders`, each once."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else Path(home)
    found: list[FoundModel] = []
    for folder in hf_cache_dirs(environ, home):
        found += scan_hf_cache(folder)
    for folder in lmstudio_dirs(environ, home):
        found += scan_folder(folder, "LM Studio")
    for folder in ollama_dirs(environ, home):
        found += scan_ollama(folder)
    for folder in extra_folders:
        found += scan_folder(Path(folder).expanduser(), "Folder")
    unique: dict[Path, FoundModel] = {}
    for model in found:
        unique.setdefault(model.path.resolve(), model)
    return sorted(unique.values(), key=lambda m: (m.origin, m.name.lower()))


# -- where to look -------------------------------------------------------------------------------


def hf_cache_dirs(environ, home: Path) -> list[Path]:
    if environ.get("HF_HUB_CACHE"):
        return [Path(environ["HF_HUB_CACHE"])]
    hf_home = Path(environ.get("HF_HOME") or home / ".cache" / "huggingface")
    return [hf_home / "hub"]


def lmstudio_dirs(environ, home: Path) -> list[Path]:
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def ollama_dirs(environ, home: Path) -> list[Path]:
    if environ.get("OLLAMA_MODELS"):
        return [Path(environ["OLLAMA_MODELS"])]
    return [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


# -- scanning ------------------------------------------------------------------------------------


def scan_hf_cache(hub: Path) -> list[FoundModel]:
    """hub/models--org--name/snapshots/<revision>/ folders holding a Gemma 3 config."""
    found = []
    for repo in _children(hub):
        if not repo.name.startswith("models--"):
            continue
        label = repo.name.removeprefix("models--").replace("--", "/")
        for snapshot in _children(repo / "snapshots"):
            model = read_hf_folder(snapshot, "Hugging Face cache", label)
            if model is not None:
                found.append(model)
            found += [m for m in (read_gguf(p, "Hugging Face cache") for p in _ggufs(snapshot))
                      if m is not None]
    return found


def scan_folder(root: Path, origin: str, depth: int = MAX_DEPTH) -> list[FoundModel]:
    """HF folders and GGUF files anywhere below `root` (symlinks are not followed)."""
    found = []
    model = read_hf_folder(root, origin)
    if model is not None:
        return [model]
    found += [m for m in (read_gguf(p, origin) for p in _ggufs(root)) if m is not None]
    if depth > 0:
        for child in _children(root):
            if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
                found += scan_folder(child, origin, depth - 1)
    return found


def scan_ollama(root: Path) -> list[FoundModel]:
    """Ollama keeps manifests (JSON naming layers by digest) and blobs (the GGUF files)."""
    found = []
    manifests = root / "manifests"
    for manifest in _files_below(manifests, depth=5):
        try:
            layers = json.loads(manifest.read_text()).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        blobs = {layer.get("mediaType", ""): layer.get("digest", "") for layer in layers}
        model_digest = blobs.get("application/vnd.ollama.image.model", "")
        if not model_digest:
            continue
        blob = root / "blobs" / model_digest.replace(":", "-")
        tag = f"{manifest.parent.name}:{manifest.name}"
        model = read_gguf(blob, "Ollama", name=tag)
        if model is None:
            continue
        projector = blobs.get("application/vnd.ollama.image.projector", "")
        if projector:
            model.mmproj = root / "blobs" / projector.replace(":", "-")
        found.append(model)
    return found


# -- reading one candidate -----------------------------------------------------------------------


def read_hf_folder(folder: Path, origin: str, label: str = "") -> FoundModel | None:
    config_path = folder / "config.json"
    weights = sorted(folder.glob("*.safetensors"))
    if not config_path.is_file() or not weights:
        return None
    try:
        data = json.loads(config_path.read_text())
        if not _is_gemma3(data):
            return None
        config = config_from_hf(data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    size = sum(_size(p) for p in weights)
    return FoundModel(label or folder.name, folder, origin, size, config)


def read_gguf(path: Path, origin: str, name: str = "") -> FoundModel | None:
    """A Gemma 3 GGUF (not a projector) with its metadata; None for anything else."""
    meta = gguf_metadata(path)
    if meta is None or meta.get("general.architecture") != "gemma3":
        return None
    text = {k.removeprefix("gemma3."): v for k, v in meta.items() if k.startswith("gemma3.")}
    try:
        text.setdefault("vocab_size", len(meta.get("tokenizer.ggml.tokens", ())) or 262144)
        config = ModelConfig(text_config=text_config_from_gguf(text))
    except (KeyError, ValueError, TypeError):
        return None
    label = name or str(meta.get("general.name") or path.stem)
    model = FoundModel(label, path, origin, _size(path), config)
    model.mmproj = find_mmproj(path)
    if model.mmproj is not None:
        model.config.vision_config = VisionConfig()
    return model


def find_mmproj(model_path: Path) -> Path | None:
    """A projector file beside a GGUF model (llama.cpp and LM Studio name them mmproj-*)."""
    for candidate in sorted(model_path.parent.glob("*.gguf")):
        if "mmproj" in candidate.name.lower() and candidate != model_path:
            return candidate
    return None


def gguf_metadata(path: Path) -> dict | None:
    """The GGUF key/value metadata (arrays as their length only), or None when the file is not
    a readable GGUF. Reads the header alone; a 262K-token vocabulary is skipped, not decoded."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return None
            version, _n_tensors, n_fields = struct.unpack("<IQQ", f.read(20))
            if version not in (2, 3):
                return None
            return dict(_read_field(f) for _ in range(n_fields))
    except (OSError, ValueError, struct.error, UnicodeDecodeError, MemoryError):
        return None  # a damaged or foreign file is simply not a candidate


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read_field(f) -> tuple[str, object]:
    key = _read_string(f)
    (kind,) = struct.unpack("<I", f.read(4))
    return key, _read_value(f, kind)


def _read_value(f, kind: int):
    if kind == _STRING:
        return _read_string(f)
    if kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", f.read(12))
        if item_kind == _STRING:
            for _ in range(count):
                (n,) = struct.unpack("<Q", f.read(8))
                f.seek(n, 1)
        elif item_kind in _SCALARS:
            f.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
        else:
            raise ValueError(f"unknown GGUF array type {item_kind}")
        return range(count)  # the length is all discovery needs
    fmt = _SCALARS.get(kind)
    if fmt is None:
        raise ValueError(f"unknown GGUF value type {kind}")
    (value,) = struct.unpack(fmt, f.read(struct.calcsize(fmt)))
    return value


def _read_string(f) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    if n > 1 << 24:
        raise ValueError("implausible GGUF string length")
    return f.read(n).decode("utf-8")


def _is_gemma3(data: dict) -> bool:
    types = {data.get("model_type"), (data.get("text_config") or {}).get("model_type")}
    architectures = " ".join(data.get("architectures") or [])
    return bool(types & set(GEMMA3_TYPES)) or "Gemma3" in architectures


def _ggufs(folder: Path) -> list[Path]:
    return sorted(p for p in _children(folder)
                  if p.suffix.lower() == ".gguf" and "mmproj" not in p.name.lower())


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _files_below(folder: Path, depth: int) -> list[Path]:
    files = []
    for child in _children(folder):
        if child.is_file():
            files.append(child)
        elif child.is_dir() and depth > 0:
            files += _files_below(child, depth - 1)
    return files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size  # follows the HF cache's symlinks to the blobs
    except OSError:
        return 0
