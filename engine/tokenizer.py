"""Gemma 3 tokenizer: SentencePiece BPE, from an HF `tokenizer.model` or rebuilt from a GGUF.

Every piece that marks structure (turns, images, bos/eos, `<unusedN>`) is made CONTROL before the
model is loaded, so SentencePiece never matches it in text: a user typing `<start_of_turn>` gets
the ordinary pieces of that string. Special ids enter a prompt only through `engine.chat`.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_model

from engine.errors import ModelLoadError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # GGUF == SentencePiece
BPE = 2
IMAGE_TOKEN_ID = 262144  # <image_soft_token>: an HF added token past the SentencePiece vocabulary
SPACE = "\u2581"
MARKERS = frozenset({
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]", "<start_of_turn>",
    "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
})
_UNUSED_MARKER = re.compile(r"<unused\d+>")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PROTO_VERSION = b"gemma-desk tokenizer proto v1"  # bump when _build_proto changes its output


def is_marker(piece: str) -> bool:
    return piece in MARKERS or _UNUSED_MARKER.fullmatch(piece) is not None


def _fixed_type(piece: str, kind: int) -> int:
    """Markers become CONTROL (the HF .model has some USER_DEFINED); `<unk>` is the UNKNOWN."""
    if piece == "<unk>":
        return UNKNOWN
    return CONTROL if is_marker(piece) else kind


def _respelled(piece: str, kind: int) -> str:
    """llama.cpp stores whitespace-run pieces with real spaces; SentencePiece matches them as ▁▁."""
    if kind == USER_DEFINED and " " in piece and not piece.strip():
        return piece.replace(" ", SPACE)
    return piece


def _set_specs(proto: sp_model.ModelProto) -> None:
    """Gemma 3's .model settings: byte-fallback BPE, text taken as is, no dummy prefix."""
    trainer = proto.trainer_spec
    trainer.model_type, trainer.byte_fallback, trainer.vocab_size = BPE, True, len(proto.pieces)
    trainer.unk_piece, trainer.bos_piece, trainer.eos_piece = "<unk>", "<bos>", "<eos>"
    trainer.pad_piece = "<pad>"
    norm = proto.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces = "identity", False, False
    norm.escape_whitespaces = True


def _build_proto(tokens: list[bytes], scores: np.ndarray, types: np.ndarray) -> bytes:
    proto = sp_model.ModelProto()
    add = proto.pieces.add
    for raw, score, kind in zip(tokens, scores.tolist(), types.tolist()):
        piece = raw.decode("utf-8")
        add(piece=_respelled(piece, kind), score=score, type=_fixed_type(piece, kind))
    _set_specs(proto)
    return proto.SerializeToString()


def _gguf_vocab(source) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """tokens/scores/types from our GGUFFile, a `gguf.GGUFReader`, or a plain metadata dict."""
    fields = getattr(source, "fields", source)
    keys = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
    missing = [key for key in keys if key not in fields]
    if missing:
        raise ModelLoadError(f"the GGUF file has no tokenizer ({', '.join(missing)} missing)")
    tokens, scores, types = (fields[key] for key in keys)
    if hasattr(tokens, "parts"):  # gguf.ReaderField: one numpy view per element
        tokens = [bytes(tokens.parts[i]) for i in tokens.data]
        scores, types = (np.array([f.parts[i][0] for i in f.data]) for f in (scores, types))
    if not all(isinstance(t, bytes) for t in tokens):  # our GGUFFile gives bytes already
        tokens = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in tokens]
    scores = np.asarray(scores, dtype=np.float32)
    types = np.asarray(types, dtype=np.int32)
    if not len(tokens) == len(scores) == len(types):
        raise ModelLoadError("the GGUF tokenizer arrays (tokens, scores, types) differ in length")
    return tokens, scores, types


def _default_cache_dir() -> Path:
    from engine import paths

    return paths.cache_dir("tokenizers")


def _cache_path(vocab, cache_dir: Path | None) -> Path:
    """Building the proto costs about a second, so it is kept under a hash of the vocabulary."""
    tokens, scores, types = vocab
    digest = hashlib.sha256(_PROTO_VERSION)
    for part in (b"\0".join(tokens), scores.tobytes(), types.tobytes()):
        digest.update(part)
    return (cache_dir or _default_cache_dir()) / f"{digest.hexdigest()[:32]}.model"


def _write_quietly(path: Path, blob: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(blob)
        partial.replace(path)
    except OSError:
        pass  # a read-only cache only costs the rebuild next time


def _find(processor: spm.SentencePieceProcessor, piece: str) -> int | None:
    token_id = processor.piece_to_id(piece)  # the unknown id when absent
    return token_id if processor.id_to_piece(token_id) == piece else None


def _marker_ids(processor: spm.SentencePieceProcessor) -> list[int]:
    found = [_find(processor, piece) for piece in MARKERS]
    for n in itertools.count():
        unused = _find(processor, f"<unused{n}>")
        if unused is None:
            break
        found.append(unused)
    return [token_id for token_id in found if token_id is not None]


def _load(blob: bytes, origin: str) -> spm.SentencePieceProcessor:
    try:
        return spm.SentencePieceProcessor(model_proto=blob)
    except (RuntimeError, OSError) as exc:
        raise ModelLoadError(f"{origin}: not a usable SentencePiece model ({exc})") from exc


class Tokenizer:
    """Text <-> Gemma 3 token ids. `encode` adds no BOS and never yields a special id."""

    def __init__(self, processor: spm.SentencePieceProcessor, origin: str = "tokenizer"):
        self._sp = processor
        self.vocab_size = processor.get_piece_size()
        self.bos_id = self._id_of("<bos>", origin)
        self.eos_id = self._id_of("<eos>", origin)
        self.pad_id = self._id_of("<pad>", origin)
        self.start_of_turn_id = self._id_of("<start_of_turn>", origin)
        self.end_of_turn_id = self._id_of("<end_of_turn>", origin)
        self.boi_id = self._id_of("<start_of_image>", origin)
        self.eoi_id = self._id_of("<end_of_image>", origin)
        self.image_token_id = IMAGE_TOKEN_ID
        self.stop_ids = frozenset({self.eos_id, self.end_of_turn_id})
        self._bytes: dict[int, bytes] = {}

    def _id_of(self, piece: str, origin: str) -> int:
        token_id = _find(self._sp, piece)
        if token_id is None:
            raise ModelLoadError(f"{origin}: no '{piece}' token, so not a Gemma 3 vocabulary")
        return token_id

    @classmethod
    def from_gguf(cls, source, *, cache_dir: Path | None = None) -> Tokenizer:
        """Rebuilt from the GGUF's tokens/scores/types; its bos/eos/space-prefix fields are not
        trusted (some Gemma 3 files carry wrong ones), the pieces themselves say it all."""
        vocab = _gguf_vocab(source)
        origin = str(getattr(source, "path", "GGUF file"))
        cached = _cache_path(vocab, cache_dir)
        try:
            return cls(spm.SentencePieceProcessor(model_proto=cached.read_bytes()), origin)
        except (OSError, RuntimeError):
            pass  # not built yet, or a damaged cache file
        try:
            blob = _build_proto(*vocab)
        except UnicodeDecodeError as exc:
            raise ModelLoadError(f"{origin}: a tokenizer piece is not UTF-8 ({exc})") from exc
        tokenizer = cls(_load(blob, origin), origin)
        _write_quietly(cached, blob)
        return tokenizer

    @classmethod
    def from_model_file(cls, path) -> Tokenizer:
        """The `tokenizer.model` of an HF checkpoint folder (markers there are USER_DEFINED)."""
        path = Path(path)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read the tokenizer ({exc})") from exc
        as_is = _load(blob, str(path))
        proto = sp_model.ModelProto()
        proto.ParseFromString(blob)
        for token_id in _marker_ids(as_is):  # a few thousand lookups, not 262K piece visits
            piece = proto.pieces[token_id]
            piece.type = _fixed_type(piece.piece, piece.type)
        return cls(_load(proto.SerializeToString(), str(path)), str(path))

    def save_model_file(self, path) -> None:
        """Write the SentencePiece model as a `tokenizer.model` file."""
        Path(path).write_bytes(self._sp.serialized_model_proto())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, not {type(text).__name__}")
        # Lone surrogates (from broken clipboard text) have no UTF-8 form.
        return self._sp.encode(_SURROGATE.sub("\ufffd", text))

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", "replace")

    def piece(self, token_id: int) -> str:
        if token_id == self.image_token_id:
            return "<image_soft_token>"
        self._check(token_id)
        return self._sp.id_to_piece(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """What one token adds to the text: nothing for control tokens, one raw byte for <0xXX>."""
        cached = self._bytes.get(token_id)
        if cached is None:
            cached = self._bytes[token_id] = self._compute_bytes(token_id)
        return cached

    def _compute_bytes(self, token_id: int) -> bytes:
        if token_id == self.image_token_id:
            return b""
        self._check(token_id)
        sp = self._sp
        if sp.is_control(token_id) or sp.is_unknown(token_id):
            return b""
        piece = sp.id_to_piece(token_id)
        if sp.is_byte(token_id):
            return bytes([int(piece[3:5], 16)])
        return piece.replace(SPACE, " ").encode("utf-8")

    def _check(self, token_id) -> None:
        if not isinstance(token_id, (int, np.integer)) or not 0 <= token_id < self.vocab_size:
            last = self.vocab_size - 1
            raise ValueError(f"token id {token_id!r} is outside the vocabulary (0..{last})")

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Token-by-token text: a character split over byte tokens is held back until complete."""

    def __init__(self, tokenizer: Tokenizer):
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token_id: int) -> str:
        return self._utf8.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """The rest: an unfinished character at the very end shows as U+FFFD, as decode() does."""
        return self._utf8.decode(b"", final=True)
