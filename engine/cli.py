"""`gemma-desk-cli`: the headless tool (info, generate, and more as the engine grows)."""

from __future__ import annotations

import argparse
import platform
import sys


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from engine import __version__
    from engine.default_model import default_model_path
    from engine.device import available_devices, device_name, pick_device

    device = pick_device("auto")
    path = default_model_path()
    print(f"Gemma Desk {__version__}")
    print(f"Python     {platform.python_version()} ({sys.executable})")
    print(f"torch      {torch.__version__}")
    print(f"devices    {', '.join(available_devices())}; auto picks {device.type}")
    print(f"device     {device_name(device)}")
    state = "assembled" if path.exists() else "not assembled yet (done on first load)"
    print(f"default    {path} ({state})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.chat import render_prompt
    from engine.generate import Sampling

    model = load_for_text(args)
    if args.raw:
        ids = [model.tokenizer.bos_id, *model.tokenizer.encode(args.prompt)]
    else:
        ids = render_prompt(model.tokenizer, [("user", args.prompt)])
    sampling = None if args.greedy else Sampling(seed=args.seed)
    session = model.new_session()
    session.prefill(ids)
    for piece in session.generate(args.max_new_tokens, sampling=sampling):
        print(piece, end="", flush=True)
    print()
    stats = session.last_stats
    if stats is not None:
        print(stats.summary(), file=sys.stderr)
    return 0


def load_for_text(args: argparse.Namespace):
    """The model of `--model`, refused before loading when it cannot read and write text."""
    import engine
    from engine.checkpoints import open_checkpoint

    source = None if args.model == "default" else args.model
    if source is not None:
        open_checkpoint(source).require_tokenizer()
    return engine.load(source, device=args.device)


def cmd_summarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.documents import extract
    from engine.errors import EngineError
    from engine.summarize import TerminalProgress, summarize

    try:
        doc = extract(args.file)  # a bad file is refused before the model loads
        model = load_for_text(args)
        bar = TerminalProgress(sys.stderr)
        summary = summarize(model, doc, context_length=args.context_length,
                            mode="first_part" if args.first_part else "sections",
                            section_tokens=args.section_tokens, answer_tokens=args.answer_tokens,
                            progress=bar)
        bar.finish(summary.header)
    except (EngineError, ValueError) as exc:
        print(f"gemma-desk-cli summarize: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(summary.markdown(), encoding="utf-8")
        print(f"Wrote {args.out}", file=sys.stderr)
    else:
        print(summary.markdown())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.bench import run_bench

    peers = None if args.peers is None else tuple(p for p in args.peers.split(",") if p != "none")
    model = None if args.model == "default" else Path(args.model)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        run_bench(Path(args.out), quick=args.quick, peers=peers, model=model,
                  threads=args.threads, device=args.device, log=log)
    except ValueError as exc:
        print(f"gemma-desk-cli bench: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out} and {Path(args.out).with_suffix('.json')}", file=sys.stderr)
    return 0


def cmd_bench_shape(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.bench_shape import run_shape_bench

    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        run_shape_bench(args.shape, Path(args.out), device=args.device, quick=args.quick,
                        compile_step=args.compile, quantization=args.quantization,
                        prefill=args.prefill, log=log)
    except (ValueError, RuntimeError) as exc:
        print(f"gemma-desk-cli bench-shape: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out} and {Path(args.out).with_suffix('.json')}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gemma-desk-cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="Python, torch, devices and the default model's location")
    gen = sub.add_parser("generate", help="continue a prompt or answer it as a chat turn")
    gen.add_argument("--model", default="default", help="HF folder, .gguf file, or 'default'")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    gen.add_argument("--raw", action="store_true", help="no chat template: plain continuation")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default="auto")
    summ = sub.add_parser("summarize", help="summarise a long file, in sections if it must be")
    summ.add_argument("file", help="text, Markdown, code, CSV/JSON/YAML/log, PDF, DOCX or HTML")
    summ.add_argument("--model", default="default", help="HF folder, .gguf file, or 'default'")
    summ.add_argument("--context-length", type=int, default=None,
                      help="cap the context (a small one makes the section path quick)")
    summ.add_argument("--out", help="write the Markdown summary here instead of to stdout")
    summ.add_argument("--first-part", action="store_true",
                      help="read only as much of the start as fits, and say so")
    summ.add_argument("--section-tokens", type=int, default=None,
                      help="longest summary of one section")
    summ.add_argument("--answer-tokens", type=int, default=None, help="longest final summary")
    summ.add_argument("--device", default="auto")
    bench = sub.add_parser("bench", help="speed against transformers and llama.cpp, same run")
    bench.add_argument("--quick", action="store_true", help="one short run of tiny sizes")
    bench.add_argument("--out", default="BENCHMARKS.md", help="the Markdown file (+ its .json)")
    bench.add_argument("--peers", default=None,
                       help="comma-separated: transformers,llama.cpp or none "
                            "(default: both; none with --quick)")
    bench.add_argument("--model", default="default", help="a .gguf file, or 'default'")
    bench.add_argument("--threads", type=int, default=None, help="default: every core")
    bench.add_argument("--device", default="auto",
                       help="where gemma-desk runs (cpu, mps, cuda); the peers use the CPU")
    shape = sub.add_parser("bench-shape",
                           help="a Gemma 3 shape with random weights: decode against the memory "
                                "bandwidth, 32K prefill (for GPUs)")
    shape.add_argument("--shape", default="4b", help="270m, 1b, 4b, 12b or 27b")
    shape.add_argument("--device", default="auto")
    shape.add_argument("--quick", action="store_true", help="one short run of tiny sizes")
    shape.add_argument("--quantization", default="auto",
                       help="auto (int8 on the CPU, as the app loads), int8, bf16 or none")
    shape.add_argument("--prefill", type=int, help="prompt tokens to prefill (default 32768)")
    shape.add_argument("--compile", action="store_true",
                       help="also decode with the CUDA-graph step compiled by torch.compile")
    shape.add_argument("--out", default="BENCHMARKS-GPU.md", help="the Markdown file (+ .json)")
    return parser


COMMANDS = {"info": cmd_info, "generate": cmd_generate, "summarize": cmd_summarize,
            "bench": cmd_bench, "bench-shape": cmd_bench_shape}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import EngineError

    try:
        return COMMANDS[args.command](args)
    except EngineError as exc:  # a missing or broken model: a message, not a traceback
        print(f"gemma-desk-cli {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
