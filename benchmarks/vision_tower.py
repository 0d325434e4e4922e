"""Time the real-size Gemma 3 vision tower (SigLIP 400M + projector) per image, random weights.

    python benchmarks/vision_tower.py [--device cpu|cuda|mps] [--dtype float32|bfloat16]

Prints one line for BENCHMARKS.md: the median of a few timed runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from engine.config import VisionConfig
from engine.vision_model import VisionTower

TEXT_HIDDEN = 2560  # the 4B model's width; the projection is a negligible part of the work


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def time_tower(device: torch.device, dtype: torch.dtype, runs: int, batch: int) -> list[float]:
    torch.manual_seed(0)
    with torch.device(device):
        tower = VisionTower(VisionConfig(), TEXT_HIDDEN).to(dtype).eval()
    pixels = torch.rand(batch, 3, 896, 896, device=device) * 2 - 1
    seconds = []
    for run in range(runs + 1):  # the first run warms up kernels and allocators
        synchronise(device)
        start = time.perf_counter()
        features = tower(pixels)
        synchronise(device)
        if run:
            seconds.append((time.perf_counter() - start) / batch)
    assert torch.isfinite(features).all()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    seconds = time_tower(device, dtype, args.runs, args.batch)
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    print(f"| vision tower (SigLIP 896px + projector), per image | {device.type} ({where}) | "
          f"{args.dtype} | batch {args.batch} | {statistics.median(seconds):.2f} s median of "
          f"{len(seconds)} | torch {torch.__version__} |")


if __name__ == "__main__":
    main()
