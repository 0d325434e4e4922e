"""A fast reader of the GGUF container: metadata, tensor table, memory-mapped tensor data.

The `gguf` package's reader builds a numpy view per element of every metadata array, which
takes over ten seconds for a 262K-token vocabulary. This one decodes numeric arrays in one
`np.frombuffer` and strings in a tight loop, then maps tensor data without copying it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ModelLoadError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
          6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
STRING, ARRAY = 8, 9


@dataclass
class GGUFTensor:
    name: str
    shape: tuple[int, ...]  # torch (row-major) order: GGML lists the fastest dimension first
    qtype: int  # a gguf.GGMLQuantizationType value
    data: np.ndarray  # the raw bytes (uint8) of the tensor, memory-mapped


class GGUFFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.stat().st_size == 0:
            raise ValueError("the file is empty (0 bytes)")
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        self._raw = memoryview(self._buf)
        if bytes(self._raw[:4]) != b"GGUF":
            raise ValueError("no GGUF magic number at the start")
        self._pos = 4
        version, n_tensors, n_fields = self._unpack("<I"), self._unpack("<Q"), self._unpack("<Q")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        self.fields: dict[str, object] = {}
        for _ in range(n_fields):
            key = self._string()
            self.fields[key] = self._value(self._unpack("<I"))
        infos = [self._tensor_info() for _ in range(n_tensors)]
        alignment = self.fields.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0:
            raise ValueError(f"general.alignment is {alignment!r}, not a positive number")
        start = -(-self._pos // alignment) * alignment
        self.tensors = [self._tensor(start, *info) for info in infos]

    def _take(self, n: int) -> int:
        """Where the next n bytes begin; the header must not run past the end of the file."""
        begin = self._pos
        if begin + n > len(self._buf):
            raise ValueError(f"the file ends at byte {len(self._buf):,}, inside its header: "
                             "truncated or incomplete download?")
        self._pos += n
        return begin

    def _unpack(self, fmt: str):
        return struct.unpack_from(fmt, self._raw, self._take(struct.calcsize(fmt)))[0]

    def _string(self) -> str:
        n = self._unpack("<Q")
        begin = self._take(n)
        return bytes(self._raw[begin:begin + n]).decode("utf-8", errors="replace")

    def _value(self, kind: int):
        if kind in _SCALARS:
            return self._unpack(_SCALARS[kind])
        if kind == STRING:
            return self._string()
        if kind != ARRAY:
            raise ValueError(f"unknown metadata type {kind}")
        item, count = self._unpack("<I"), self._unpack("<Q")
        if item in _NUMPY:
            size = np.dtype(_NUMPY[item]).itemsize
            return np.frombuffer(self._buf, _NUMPY[item], count, self._take(count * size))
        if item == STRING:
            return self._string_array(count)
        return [self._value(item) for _ in range(count)]

    def _string_array(self, count: int) -> list[bytes]:
        raw, pos, out = self._raw, self._pos, []
        unpack = struct.Struct("<Q").unpack_from
        try:
            for _ in range(count):
                (n,) = unpack(raw, pos)
                out.append(bytes(raw[pos + 8:pos + 8 + n]))
                pos += 8 + n
        except struct.error:  # ran off the end of the file, which _take reports
            pos = len(self._buf) + 1
        self._take(pos - self._pos)
        return out

    def _tensor_info(self):
        name = self._string()
        n_dims = self._unpack("<I")
        if n_dims > 4:  # GGML_MAX_DIMS; more is a damaged header, not a bigger tensor
            raise ValueError(f"tensor '{name}' claims {n_dims} dimensions (damaged header)")
        dims = [self._unpack("<Q") for _ in range(n_dims)]
        return name, tuple(reversed(dims)), self._unpack("<I"), self._unpack("<Q")

    def _tensor(self, start, name, shape, qtype, offset) -> GGUFTensor:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        try:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
        except ValueError:
            raise ValueError(f"tensor '{name}' has an unknown type {qtype}") from None
        n_values = int(np.prod(shape, dtype=np.int64))
        if n_values % block:
            raise ValueError(f"tensor '{name}' of shape {shape} does not fill whole blocks of "
                             f"{block} values (damaged header)")
        n_bytes = n_values // block * size
        begin = start + offset
        if begin + n_bytes > len(self._buf):
            raise ValueError(f"the file ends inside tensor '{name}': truncated or incomplete "
                             "download?")
        return GGUFTensor(name, shape, qtype, self._buf[begin:begin + n_bytes])


def open_gguf(path: Path) -> GGUFFile:
    """The parsed file, or a ModelLoadError that names it and says what to do."""
    try:
        return GGUFFile(path)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a readable GGUF file ({exc}). Download or convert "
                             "it again.") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
