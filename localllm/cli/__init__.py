"""The `localllm` command line.

Thin by design: parse the arguments, call a service, print. Command modules
import only the standard library at module level so `localllm --help` stays
instant; each command's handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from localllm import __version__
from localllm.cli import (
    bench,
    hw,
    importing,
    integrity,
    keys,
    launch,
    models,
    plan,
    pull,
    run,
    server,
    worker,
)
from localllm.errors import LocalLLMError

# Each command module contributes `register(subparsers)`; order is the help order.
_COMMANDS = (
    run, launch, hw, plan, pull, models, integrity, importing, server, keys, bench, worker,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localllm",
        description="Run large language models on this machine.",
    )
    parser.add_argument("--version", action="version", version=f"localllm {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of short error messages"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `localllm` script and `python -m localllm`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        handler = run.run_home
    try:
        code: int = handler(args)
    except LocalLLMError as exc:
        if args.debug:
            raise
        print(f"localllm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `localllm hw | head`: the reader left; not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
