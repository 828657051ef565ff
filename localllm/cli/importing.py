"""`localllm import ollama [DIR]`: Ollama's models, in this store, without copying."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "bring in the models of another tool's store (Ollama), each layer verified"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "import",
        help=HELP,
        description=(
            "Create every model of Ollama's store in localllm's, with its template, system "
            "prompt, parameters, messages, adapters, projector and license. Every layer is "
            "hashed and compared with its digest; the weights are cloned where the file "
            "system can (reflink: no space used twice), else copied, so a later change "
            "to Ollama's files never reaches these. Ollama's folder is only read. DIR: "
            "Ollama's models folder (default: OLLAMA_MODELS, else ~/.ollama/models)."
        ),
    )
    parser.add_argument("source", choices=["ollama"], help="where the models come from")
    parser.add_argument("dir", nargs="?", type=Path, metavar="DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from localllm.cli.pull import open_store
    from localllm.store.ollama_import import import_ollama, ollama_models_dir
    from localllm.units import format_bytes

    console = Console(highlight=False)
    root = args.dir or ollama_models_dir()
    with console.status(f"importing from {root}") as status:
        report = import_ollama(root, open_store(), lambda name: status.update(f"importing {name}"))
    for model in report.imported:
        console.print(f"{model.name:40} {format_bytes(model.size):>10}  {model.how}")
        for note in model.notes:
            console.print(f"  note: {note}")
    for problem in report.problems:
        console.print(f"[red]not imported[/red]: {problem}")
    console.print(f"{len(report.imported)} imported, {len(report.problems)} not imported")
    return 1 if report.problems else 0
