"""`localllm verify` and `localllm prune`: the store checked against its digests, and
cleared of what crashes and removals left."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "verify",
        help="re-hash the models' blobs and name any whose bytes no longer match",
        description=(
            "Hash every blob of the named models (all models by default) again and compare "
            "it with its digest. A blob that changed is named with the models that use it; "
            "--repair fetches it again from where it came from (the Hub, a URL, the local "
            "file it was copied from if that still has the same bytes), or removes the "
            "models that use it when it cannot. Exit status 1 when a blob stays bad."
        ),
    )
    p.add_argument("models", nargs="*", metavar="MODEL")
    p.add_argument(
        "--repair",
        action="store_true",
        help="fetch the damaged blobs again, or remove the models using them",
    )
    p.set_defaults(handler=run_verify)
    p = subparsers.add_parser(
        "prune",
        help="remove temporary files of crashed processes and blobs no model uses",
        description=(
            "Remove the temporary files that killed processes left in the store, and "
            "blobs that no model uses and that are older than an hour (an upload waiting "
            "for its create stays). Partial downloads are kept: `pull` resumes them. The "
            "server does the same each time it starts, unless LOCALLLM_NOPRUNE=1."
        ),
    )
    p.set_defaults(handler=run_prune)


def run_verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from localllm.cli.pull import open_store, progress_bars
    from localllm.store.integrity import verify
    from localllm.store.names import parse_name

    store = open_store()
    manifests = [store.get(parse_name(m)) for m in args.models] or store.list()
    console = Console(stderr=True)
    bars = progress_bars(console)

    def on_blob(digest: str, size: int) -> Any:
        task = bars.add_task(digest[:19], total=size)
        return lambda done, total: bars.update(task, completed=done)

    with bars:
        bad = verify(store, manifests, on_blob)
    hashed = len({d for m in manifests for d in m.digests})
    if not bad:
        print(f"{hashed} blobs of {len(manifests)} models match their digests")
        return 0
    for blob in bad:
        print(f"{blob.digest} {blob.problem}; used by {', '.join(blob.models)}")
    if not args.repair:
        print("run `localllm verify --repair` to fetch those blobs again (or remove their models)")
        return 1
    import os

    from localllm.store.integrity import repair

    said = repair(store, bad, os.environ.get("HF_ENDPOINT"))
    for line in said:
        print(line)
    return 1 if any(" removed; " in line for line in said) else 0


def run_prune(args: argparse.Namespace) -> int:
    from localllm.cli.pull import open_store
    from localllm.store.integrity import prune
    from localllm.units import format_bytes

    pruned = prune(open_store())
    print(
        f"removed {len(pruned.temporary)} temporary files and {len(pruned.unused)} unused "
        f"blobs ({format_bytes(pruned.bytes)})"
    )
    if pruned.kept_because:
        print(f"unused blobs were not looked at: {pruned.kept_because}")
    return 0
