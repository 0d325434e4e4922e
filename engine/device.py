"""Device and dtype choice, and how much memory is free on each kind of device."""

from __future__ import annotations

import os
from functools import cache

import torch

# Below this many parameters a model decodes faster on the CPU than through PyTorch's MPS
# backend (per-kernel launch cost dominates tiny matmuls), so "auto" keeps it on the CPU.
MPS_MIN_PARAMS = 600_000_000


def available_devices() -> list[str]:
    """Every device kind this machine can run on, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def pick_device(requested: str = "auto", n_params: int | None = None) -> torch.device:
    """Resolve "auto" (or an explicit name) to a torch.device, with a clear error if absent."""
    if requested == "auto":
        kinds = available_devices()
        if kinds[0] == "mps" and n_params is not None and n_params < MPS_MIN_PARAMS:
            return torch.device("cpu")
        return torch.device(kinds[0])
    kind = requested.split(":")[0]
    if kind not in available_devices():
        found = ", ".join(available_devices())
        raise RuntimeError(f"Device '{requested}' is not available here (found: {found})")
    return torch.device(requested)


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """fp32 on the CPU (no fast bf16 on common CPUs), bf16 on CUDA and MPS."""
    if requested != "auto":
        dtype = getattr(torch, requested, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"Unknown dtype '{requested}'")
        return dtype
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def free_memory_bytes(device: torch.device) -> int:
    """Bytes that can still be allocated on the device (best effort on CPU and MPS)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        # MPS shares system memory; the driver's own ceiling is the tighter bound.
        limit = torch.mps.recommended_max_memory()
        return max(0, int(limit) - int(torch.mps.driver_allocated_memory()))
    return _cpu_available_bytes()


def _cpu_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3  # unknown platform without sysconf (Windows): assume a modest 8 GiB


def device_name(device: torch.device) -> str:
    """A human-readable name of the device, for the info command and benchmarks."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    import platform

    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings on GPUs measure nothing otherwise)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
