"""BENCHMARKS.md and BENCHMARKS.json from the bench command's measurements."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from engine.bench import median

OURS = "gemma-desk"
# (key, label, higher is better, format)
METRICS = (
    ("load_s", "Load (s)", False, "{:.2f}"),
    ("prefill_{}_tps", "Prefill {:,} tokens (tokens/s)", True, "{:.0f}"),
    ("decode_tps", "Decode (tokens/s)", True, "{:.1f}"),
    ("first_turn_ttft_s", "First token, question on a {:,}-token document (s)", False, "{:.2f}"),
    ("follow_up_ttft_s", "First token, follow-up question on it (s)", False, "{:.3f}"),
    ("peak_rss_bytes", "Peak memory, RSS (MB)", False, "{:.0f}"),
)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _accelerator(device: str) -> str:
    """The GPU gemma-desk ran on, when it did not run on the CPU."""

    from engine.device import device_name, pick_device

    chosen = pick_device(device)
    return "" if chosen.type == "cpu" else f"; gemma-desk on {device_name(chosen)}"


def environment(model: Path, threads: int, quick: bool, device: str = "auto") -> dict:
    import torch

    from engine import __version__, kernels

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": f"CPU: {cpu_name()}" + _accelerator(device),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gemma_desk": __version__,
        "model": model.name,
        "model_bytes": model.stat().st_size,
        "int8_kernel": (f"built, {kernels.simd_bits()}-bit SIMD" if kernels.available()
                        else "unavailable (stock PyTorch path)"),
        "command": "gemma-desk-cli bench" + (" --quick" if quick else "")
                   + ("" if device == "auto" else f" --device {device}"),
    }


def rows(report: dict) -> list[tuple[str, str, dict[str, float | None]]]:
    """(key, label, {engine: median}) per table row, in display order."""
    sizes, results = report["sizes"], report["results"]
    out = []
    for key, label, _better, _fmt in METRICS:
        if key.startswith("prefill"):
            expanded = [(key.format(n), label.format(n)) for n in sizes["prefill"]]
        else:
            expanded = [(key, label.format(sizes["document"]))]
        for k, text in expanded:
            values = {name: median(r.get(k)) for name, r in results.items() if "error" not in r}
            if key == "peak_rss_bytes":
                values = {n: v / 1e6 if v else None for n, v in values.items()}
            out.append((k, text, values))
    return out


def _ratio(key: str, ours: float | None, peer: float | None) -> str:
    if not ours or not peer:
        return "-"
    higher = next(better for k, _l, better, _f in METRICS if key.startswith(k.split("{")[0]))
    return f"{ours / peer if higher else peer / ours:.1f}x"


def _format(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    fmt = next(f for k, _l, _b, f in METRICS if key.startswith(k.split("{")[0]))
    return fmt.format(value)


def markdown(report: dict) -> str:
    env, results = report["environment"], report["results"]
    engines = [n for n, r in results.items() if "error" not in r]
    peers = [n for n in engines if n != OURS]
    header = ["", *(results[n]["engine"] for n in engines), *(f"vs {p}" for p in peers)]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{env['command']}` on {env['date']}; do not edit by hand.",
        "",
        f"- Device: {env['device']}, {env['threads']} threads for every engine",
        f"- Model: `{env['model']}` ({env['model_bytes'] / 1e6:.0f} MB), the same file for all",
        f"- torch {env['torch']}, Python {env['python']}, {env['platform']}",
        f"- int8 kernel: {env['int8_kernel']}",
        f"- Medians of all runs: {report['sizes']['runs']} per round, engines taking turns "
        "over two rounds (transformers: one round); load, first turn and memory: one per round.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for key, label, values in rows(report):
        cells = [_format(key, values.get(n)) for n in engines]
        ratios = [_ratio(key, values.get(OURS), values.get(p)) for p in peers]
        lines.append("| " + " | ".join([label, *cells, *ratios]) + " |")
    lines += ["", "Ratios: how many times better gemma-desk is (faster, or less time or memory).",
              ""]
    paths = [f"- {r['engine']} loaded by {r['load_path']}" for r in results.values()
             if "load_path" in r]
    lines += [*paths, ""] if paths else []
    skipped = [f"- {n}: {r['error']}" for n, r in results.items() if "error" in r]
    if skipped:
        lines += ["Not measured:", "", *skipped, ""]
    lines += [
        "Load: a start after the first (gemma-desk's first start on a machine also compiles "
        "its kernel and prepares int8 weights, once; the bench does that before measuring). "
        "Prefill: a prompt read into an empty state. Decode: greedy tokens after a "
        f"{report['sizes']['decode_prompt']}-token prompt, stop tokens ignored. First token: "
        "from the request to the first answer token; the follow-up reuses the cached document "
        "(transformers keeps its DynamicCache, llama-cpp-python its prefix).",
        "",
        f"Run it yourself: `{env['command']}` (`--quick` for a short check; peers are measured "
        "when installed: `pip install -e \".[test,bench]\"`).",
        "",
    ]
    return "\n".join(lines)


def write_reports(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(report), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":  # re-render the tables from a JSON file
    source = Path(sys.argv[1])
    write_reports(json.loads(source.read_text()), source.with_suffix(".md"))
