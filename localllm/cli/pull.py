"""`localllm pull`: download a model into the store, after planning which file fits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.progress import Progress

    from localllm.store.pull import PullEvent
    from localllm.store.store import Store

HELP = "download a model (the quantization that fits this machine), resumable and verified"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "pull",
        help=HELP,
        description=(
            "Download a model into the store. MODEL: a catalogue name (llama3.2:3b, or "
            "llama3.2:3b-q8_0 for one quantization), hf.co/OWNER/REPO[:QUANT], or a local .gguf "
            "to import. Without a quantization, the planner picks the best that fits this "
            "machine and says why. An interrupted pull continues where it stopped."
        ),
    )
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--ctx", type=int, help="the context size to plan for")
    parser.set_defaults(handler=run)


def open_store() -> Store:
    from localllm.paths import resolve_paths
    from localllm.store.store import Store

    return Store(resolve_paths().models_dir)


def progress_bars(console: Console) -> Progress:
    """A download bar per file: name, bar, bytes, speed, time left."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip


def show_events(console: Console, bars: Progress, model: str) -> Callable[[PullEvent], None]:
    """What `pull` and `create` print of a pull's or an import's events: the plan, and a
    bar per file downloaded or read into the store."""
    from localllm.planner.explain import explain

    tasks: dict[str, Any] = {}

    def on_event(event: PullEvent) -> None:
        if event.status == "reading headers":
            console.print(f"Reading the headers of {model}...")
        elif event.status == "planned" and event.plan is not None:
            for line in explain(event.plan)[:3]:
                console.print(f"  {line}", highlight=False)
        elif event.status in ("downloading", "importing") and event.file:
            if event.file not in tasks:
                if event.status == "importing":
                    console.print(f"Importing {event.file} (the file itself is left as it is)")
                bars.start()
                tasks[event.file] = bars.add_task(Path(event.file).name, total=None)
            if event.progress is not None and event.progress.total:
                bars.update(
                    tasks[event.file], completed=event.progress.done, total=event.progress.total
                )
        elif "draft model" in event.status:  # a catalogue entry's DRAFT, pulled with it
            console.print(event.status[:1].upper() + event.status[1:], highlight=False)

    return on_event


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from localllm.planner.machine import planner_for_this_machine
    from localllm.store.resolve import pull

    console = Console(stderr=True)
    bars = progress_bars(console)
    on_event = show_events(console, bars, args.model)
    try:
        manifest = pull(args.model, open_store(), planner_for_this_machine(args.ctx), on_event)
    finally:
        bars.stop()
    print(
        f"pulled {manifest.name.removesuffix(':latest')} ({manifest.model.quantization})",
        file=sys.stdout,
    )
    return 0
