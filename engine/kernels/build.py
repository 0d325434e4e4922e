"""Builds the C kernels once per machine with the system C compiler and loads them (ctypes).

Plain C with a C ABI instead of a torch C++ extension: it compiles in well under a second
(torch's headers take a minute on two cores), needs neither Python headers nor ninja, and
links against the OpenMP runtime torch has already loaded, so both share one thread pool.
When no compiler works, `library()` returns None and engine.quant takes its stock PyTorch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

SOURCES = tuple(Path(__file__).with_name(name)
                for name in ("q8.c", "q8_rounded.c", "step.c", "layers.c"))
HEADERS = (Path(__file__).with_name("q8.h"),)
DISABLE_ENV = "GEMMA_DESK_NO_KERNELS"  # set to 1 to force the stock path (tests, debugging)
# Tried in order: the first that compiles wins (Apple's clang has no -fopenmp).
FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3"],
)

_POINTER, _INT64, _INT, _FLOAT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
_SIGNATURES = {
    "q8_matvec": [_POINTER, _INT64, _POINTER, _POINTER, _INT64, _INT64, _POINTER],
    "q8_matvec_rounded": [_POINTER, _INT64, _POINTER, _POINTER, _INT64, _INT64, _POINTER],
    "q8_dequantize": [_POINTER, _POINTER, _INT64, _INT64, _POINTER, _INT],
    "q8_quantize": [_POINTER, _INT64, _INT64, _POINTER, _POINTER],
    "q8_simd_bits": [],
    "q8_activation_bits": [],
    "step_rmsnorm": [_POINTER, _INT64, _INT64, _POINTER, _FLOAT, _POINTER],
    "step_rmsnorm_add": [_POINTER, _INT64, _POINTER, _FLOAT, _POINTER],
    "step_head_norm_rope": [_POINTER, _INT64, _INT64, _POINTER, _FLOAT, _POINTER, _POINTER],
    "step_gelu_mul": [_POINTER, _INT64, _POINTER],
    "step_store": [_POINTER, _POINTER, _POINTER, _POINTER, _INT64, _INT64, _INT64, _INT64],
    "step_scratch_floats": [_POINTER],
    "step_layers": [_POINTER, _POINTER, _INT64, _POINTER, _POINTER, _POINTER, _POINTER, _POINTER,
                    _POINTER],
    "step_attention": [_POINTER, _POINTER, _POINTER, _INT64, _INT64, _INT64, _INT64, _INT64,
                       _POINTER, _INT64, _FLOAT, _POINTER],
}
_RESULTS = {"q8_simd_bits": _INT, "q8_activation_bits": _INT, "step_attention": _INT,
            "step_layers": _INT, "step_scratch_floats": _INT64}


def compiler() -> str | None:
    """The C compiler to use: $CC, then cc, gcc, clang on the PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name
    return None


def cache_dir() -> Path:
    from engine import paths

    return paths.cache_dir("kernels")


def _cpu_model() -> str:
    """Part of the cache key: a -march=native build must not run on another CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_path(cc: str, flags: list[str]) -> Path:
    sources = [source.read_text() for source in (*SOURCES, *HEADERS)]
    key = "\n".join([*sources, cc, " ".join(flags), _cpu_model(), sys.platform])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    suffix = ".dll" if sys.platform == "win32" else ".so"
    return cache_dir() / f"q8-{digest}{suffix}"


def build_library(cc: str, flags: list[str], target: Path) -> bool:
    """Compile into a temporary file and rename it, so concurrent builds never clash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=target.suffix, dir=target.parent)
    os.close(handle)
    command = [*cc.split(), *flags, "-shared", "-fPIC", "-o", partial, *map(str, SOURCES), "-lm"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=120)
        if done.returncode != 0:
            return False
        os.replace(partial, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def open_library(path: Path):
    lib = ctypes.CDLL(str(path))  # CDLL releases the GIL during each call
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, _RESULTS.get(name)
    return lib


@cache
def library():
    """The loaded kernel library, or None (no compiler, build failed, or disabled)."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    import torch  # noqa: F401  (its OpenMP runtime must be loaded first, to be shared)

    cc = compiler()
    if cc is None:
        return None
    for flags in FLAG_SETS:
        path = _library_path(cc, flags)
        if path.exists() or build_library(cc, flags, path):
            try:
                return open_library(path)
            except OSError:
                continue
    return None
