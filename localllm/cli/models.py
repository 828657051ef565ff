"""`localllm list / show / rm / cp / create`: the models in the store."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localllm.units import format_bytes, format_count

if TYPE_CHECKING:
    from localllm.store.manifests import Manifest
    from localllm.store.store import Store


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("list", aliases=["ls"], help="list the models in the store")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(handler=run_list)

    p = subparsers.add_parser("show", help="show a model's details, parameters and template")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--modelfile", action="store_true", help="print an equivalent Modelfile")
    p.set_defaults(handler=run_show)

    p = subparsers.add_parser(
        "rm", help="remove models (their files too, unless another model uses them)"
    )
    p.add_argument("models", metavar="MODEL", nargs="+")
    p.set_defaults(handler=run_rm)

    p = subparsers.add_parser("cp", help="copy a model under a new name (no file is copied)")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("target", metavar="TARGET")
    p.set_defaults(handler=run_cp)

    p = subparsers.add_parser("create", help="create a model from a Modelfile")
    p.add_argument("model", metavar="NAME")
    p.add_argument(
        "-f",
        "--file",
        type=Path,
        default=Path("Modelfile"),
        help="the Modelfile (default ./Modelfile)",
    )
    p.add_argument(
        "--in-place",
        action="store_true",
        help=(
            "use a local GGUF that FROM names where it lies instead of copying it into the "
            "store; each load checks that it has not changed since"
        ),
    )
    p.set_defaults(handler=run_create)


def _store() -> Store:
    from localllm.cli.pull import open_store

    return open_store()


def _name(text: str) -> Any:
    """A stored model's name, also from the hf.co reference it was pulled with."""
    from localllm.store.names import parse_name
    from localllm.store.resolve import stored_name_for

    return stored_name_for(text, _store()) or parse_name(text)


def run_list(args: argparse.Namespace) -> int:
    manifests = sorted(_store().list(), key=lambda m: -m.created)
    if args.json:
        rows = [{"name": _short(m), "quantization": m.model.quantization, "size": m.size,
                 "modified": m.created, "digest": m.model.digest} for m in manifests]  # fmt: skip
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "QUANT", "SIZE", "MODIFIED"):
        table.add_column(column, justify="right" if column == "SIZE" else "left")
    for m in manifests:
        table.add_row(_short(m), m.model.quantization or "-", format_bytes(m.size), _ago(m.created))
    Console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from localllm.models.catalog import capabilities_of

    store = _store()
    m = store.get(_name(args.model))
    weights = store.blobs.path(m.model.digest)
    info, header = store.read_model(m)
    if args.modelfile:  # the whole of it: the GGUF's own template too, as Ollama shows
        draft = store.blobs.path(m.draft.digest) if m.draft else None
        projector = store.blobs.path(m.projector.digest) if m.projector else None
        whole = replace(m, template=m.template or info.chat_template)
        sys.stdout.write(whole.to_modelfile(weights, draft, projector).to_text())
        return 0
    capabilities = capabilities_of(info.architecture, header.metadata,
                                   m.template or info.chat_template or "")  # fmt: skip
    if m.projector is not None:
        capabilities.append("vision")
    lines = [
        f"  name            {_short(m)}",
        f"  architecture    {info.architecture}",
        f"  parameters      {format_count(info.parameter_count)}",
        f"  context length  {info.context_length}",
        f"  capabilities    {', '.join(capabilities)}",
    ]
    lines += [
        f"  quantization    {m.model.quantization or '-'}",
        f"  size            {format_bytes(m.size)}",
        f"  source          {m.source or '-'}",
    ]
    print("Model")
    print("\n".join(lines))
    if m.parameters:
        print("\nParameters")
        for key, value in m.parameters.items():
            print(f"  {key:<16}{value}")
    if m.system:
        print(f"\nSystem\n  {m.system}")
    template = m.template or info.chat_template
    if template:
        print("\nTemplate" + (" (from the GGUF)" if not m.template else ""))
        print("  " + template[:500].replace("\n", "\n  ") + ("..." if len(template) > 500 else ""))
    if m.licenses:
        print("\nLicense")
        for text in m.licenses:
            print("  " + text[:300].replace("\n", "\n  "))
    return 0


def run_rm(args: argparse.Namespace) -> int:
    store = _store()
    for text in args.models:
        name = _name(text)
        freed = store.remove(name)
        print(f"deleted '{name.short}'" + (f" ({len(freed)} file(s) freed)" if freed else ""))
    return 0


def run_cp(args: argparse.Namespace) -> int:
    manifest = _store().copy(_name(args.source), _name(args.target))
    print(f"copied '{_name(args.source).short}' to '{_short(manifest)}'")
    return 0


def run_create(args: argparse.Namespace) -> int:
    from localllm.planner.machine import planner_for_this_machine
    from localllm.store.create import create
    from localllm.store.modelfile import parse_modelfile

    try:
        text = args.file.read_text()
    except OSError as exc:
        from localllm.store.modelfile import ModelfileError

        raise ModelfileError(str(args.file), 0, "", f"cannot be read ({exc.strerror})") from None
    from rich.console import Console

    from localllm.cli.pull import progress_bars, show_events

    modelfile = parse_modelfile(text, source=str(args.file))
    console = Console(stderr=True)
    bars = progress_bars(console)
    try:
        manifest = create(
            _name(args.model), modelfile, _store(), base_dir=args.file.resolve().parent,
            choose=planner_for_this_machine(), in_place=args.in_place,
            on_event=show_events(console, bars, modelfile.from_),
        )  # fmt: skip
    finally:
        bars.stop()
    print(f"created '{_short(manifest)}'")
    return 0


def _short(m: Manifest) -> str:
    return m.name.removesuffix(":latest")


def _ago(created: float) -> str:
    seconds = max(time.time() - created, 0)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"
