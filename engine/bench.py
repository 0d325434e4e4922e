"""`gemma-desk-cli bench`: speed of the engine and of its peers, measured in one run.

Every engine runs in its own subprocess (a clean peak-memory figure, no state shared) on the
same GGUF file with the same token ids and thread count, one after another. Results go to
BENCHMARKS.json and, as tables, to BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULT_MARK = "BENCH-RESULT "
ROUNDS = 2
SINGLE_ROUND = ("transformers",)


@dataclass
class Sizes:
    prefill: tuple[int, ...] = (512, 4096)
    decode_prompt: int = 64
    decode_tokens: int = 64
    document: int = 8000
    question: int = 20
    answer: int = 16
    runs: int = 3

    def context(self) -> int:
        need = max(*self.prefill, self.decode_prompt + self.decode_tokens,
                   self.document + self.answer + 2 * self.question + 2)
        return -(-need // 256) * 256 + 256


QUICK = Sizes(prefill=(32, 64), decode_prompt=16, decode_tokens=8, document=200, question=8,
              answer=4, runs=1)


def token_ids(n: int, seed: int) -> list[int]:
    """Deterministic ordinary token ids (no control tokens): speed does not depend on text."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1000, 100_000, (n,), generator=generator).tolist()


def peak_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(engine, gguf: Path, sizes: Sizes, threads: int) -> dict:
    """Every figure for one engine; lists hold one value per run."""
    import torch

    torch.set_num_threads(threads)
    load_s = _timed(lambda: engine.load(gguf, threads, sizes.context()))
    document = token_ids(sizes.document, seed=1)
    _decode_rate(engine, document[:32], 4)  # warm-up: first-call costs are not speed
    out = {"engine": engine.describe(), "load_s": [load_s]}
    if hasattr(engine, "load_path"):
        out["load_path"] = engine.load_path
    for size in sizes.prefill:
        ids = (document * (size // len(document) + 1))[:size]
        out[f"prefill_{size}_tps"] = [size / _prefill_time(engine, ids) for _ in range(sizes.runs)]
    prompt = document[: sizes.decode_prompt]
    out["decode_tps"] = [_decode_rate(engine, prompt, sizes.decode_tokens)
                         for _ in range(sizes.runs)]
    out.update(_follow_up(engine, document, sizes))
    out["peak_rss_bytes"] = [peak_rss_bytes()]
    return out


def _prefill_time(engine, ids) -> float:
    engine.reset()
    return _timed(lambda: engine.prefill(ids))


def _decode_rate(engine, prompt, n) -> float:
    engine.reset()
    engine.prefill(prompt)
    return n / _timed(lambda: engine.decode(n))


def _follow_up(engine, document, sizes: Sizes) -> dict:
    """Time to first token of a question on a long document, then of a follow-up question."""
    first_q, *follow_qs = (token_ids(sizes.question, seed=10 + i) for i in range(sizes.runs + 1))
    engine.reset()
    first_turn = document + first_q
    first_s = _timed(lambda: engine.turn(first_turn))
    answer = engine.decode(sizes.answer)
    engine.mark()
    follow = []
    for question in follow_qs:
        if hasattr(engine, "restore"):
            engine.restore()
        follow.append(_timed(lambda q=question: engine.turn(first_turn + answer + q)))
    return {"first_turn_ttft_s": [first_s], "follow_up_ttft_s": follow}


# -- the parent process --------------------------------------------------------------------


def merge(earlier: dict | None, later: dict) -> dict:
    """One engine's runs from several rounds: lists joined, an error kept only if alone."""
    if earlier is None or "error" in earlier:
        return later
    if "error" in later:
        return earlier
    return {k: earlier[k] + v if isinstance(v, list) else v for k, v in later.items()}


def run_worker(name: str, gguf: Path, sizes: Sizes, threads: int, device: str,
               timeout: float) -> dict:
    """Measure one engine in a fresh interpreter; an error becomes {"error": ...}."""
    command = [sys.executable, "-m", "engine.bench", name, str(gguf), str(threads), device,
               json.dumps(asdict(sizes))]
    root = str(Path(__file__).resolve().parent.parent)  # the worker imports this same engine
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"gave no result within {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": " / ".join(tail) or f"exit status {done.returncode}"}


def run_bench(out: Path, quick: bool = False, peers: tuple[str, ...] | None = None,
              model: Path | None = None, threads: int | None = None, device: str = "auto",
              log=print) -> dict:
    """Measure the engine and its installed peers; write `out` (.md) and its .json twin."""
    from engine.bench_engines import ENGINES, installed
    from engine.bench_report import environment, write_reports

    if model is None:
        from engine.default_model import ensure_default_model

        model = ensure_default_model()
    sizes = QUICK if quick else Sizes()
    threads = threads or os.cpu_count() or 1
    if peers is None:
        peers = () if quick else ("transformers", "llama.cpp")
    unknown = [p for p in peers if p not in ENGINES or p == "gemma-desk"]
    if unknown:
        raise ValueError(f"Unknown peer {', '.join(unknown)} (choose transformers, llama.cpp)")
    names = [n for n in ("gemma-desk", *peers) if installed(n)]
    results = {n: {"error": "not installed"} for n in ("gemma-desk", *peers) if n not in names}
    if "gemma-desk" in names:
        log("gemma-desk: first start (kernel build, prepared weights) ...")
        first_start(Path(model), device)
    # Two rounds, engines taking turns, so a noisy minute on a shared machine does not fall
    # on one engine only; transformers (a minute to load) runs once.
    for round_ in range(1 if quick else ROUNDS):
        for name in names:
            if round_ and name in SINGLE_ROUND:
                continue
            log(f"{name}: measuring (round {round_ + 1}) ...")
            result = run_worker(name, Path(model), sizes, threads, device, timeout=3600)
            log(f"{name}: {result.get('error', 'done')}")
            results[name] = merge(results.get(name), result)
    report = {"environment": environment(Path(model), threads, quick, device),
              "sizes": asdict(sizes),
              "results": results}
    write_reports(report, Path(out))
    return report


def first_start(gguf: Path, device: str) -> None:
    """What only a machine's first start does (compiling the kernel, preparing int8 weights),
    done once before measuring, so the load figure is what every later start takes."""
    import engine

    engine.load(gguf, device=device)


def _worker_main(argv: list[str]) -> int:
    from engine.bench_engines import ENGINES

    name, gguf, threads, device, sizes_json = argv
    sizes = Sizes(**{k: tuple(v) if isinstance(v, list) else v
                     for k, v in json.loads(sizes_json).items()})
    engine = ENGINES[name](device) if name == "gemma-desk" else ENGINES[name]()
    result = measure(engine, Path(gguf), sizes, int(threads))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


def median(values) -> float | None:
    values = [v for v in values or [] if v is not None]
    return statistics.median(values) if values else None


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
