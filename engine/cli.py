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
    import engine
    from engine.chat import render_prompt
    from engine.generate import Sampling

    model = engine.load(None if args.model == "default" else args.model, device=args.device)
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
    return parser


COMMANDS = {"info": cmd_info, "generate": cmd_generate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
