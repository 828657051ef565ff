"""`localllm keys`: the server's API keys, each with its scopes and limits.

    localllm keys add ci --scope chat,embed --rpm 60
    localllm keys list
    localllm keys rm ci

The secret is printed once, at `add`; the server keeps only its hash (`server.keys`)
and a running server takes new and removed keys at once, without a restart.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "make, list and remove the server's API keys (scopes: chat, embed, manage)"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("keys", help=HELP, description=__doc__)
    verbs = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    add = verbs.add_parser("add", help="make a key (its secret is shown once)")
    add.add_argument("name")
    add.add_argument("--scope", default="chat", metavar="SCOPES",
                     help="comma-separated: chat (generation), embed (embeddings, "
                     "rerank), manage (pull, create, copy, delete, blobs, metrics); "
                     "default chat")  # fmt: skip
    add.add_argument("--rpm", type=int, default=0, metavar="N", help="at most N requests a minute")
    add.add_argument("--tpm", type=int, default=0, metavar="N",
                     help="at most N tokens (prompt and generated) a minute")  # fmt: skip
    add.set_defaults(handler=run_add)
    listing = verbs.add_parser("list", help="the keys, without their secrets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)
    rm = verbs.add_parser("rm", help="remove a key (a running server refuses it at once)")
    rm.add_argument("name")
    rm.set_defaults(handler=run_rm)


def _file() -> Any:
    from localllm.paths import resolve_paths
    from localllm.server.keys import KeyFile

    return KeyFile(resolve_paths().keys_file)


def run_add(args: argparse.Namespace) -> int:
    scopes = tuple(s.strip() for s in args.scope.split(",") if s.strip())
    secret = _file().add(args.name, scopes, max(0, args.rpm), max(0, args.tpm))
    print(secret)
    print(f"key {args.name!r} made ({', '.join(scopes)}): the secret above is shown only "
          "now; clients send it as `Authorization: Bearer <secret>`", flush=True)  # fmt: skip
    return 0


def run_list(args: argparse.Namespace) -> int:
    keys = _file().load()
    if args.json:
        print(json.dumps([{k: v for k, v in vars(key).items() if k != "digest"} for key in keys],
                         indent=2))  # fmt: skip
        return 0
    if not keys:
        print("no keys (localllm keys add NAME --scope chat)")
        return 0
    from rich.table import Table

    from localllm.cli.output import Printer

    table = Table("NAME", "SCOPES", "LIMIT", "CREATED", box=None, pad_edge=False)
    for key in keys:
        limits = [f"{key.requests_per_minute} req/min"] if key.requests_per_minute else []
        limits += [f"{key.tokens_per_minute} tok/min"] if key.tokens_per_minute else []
        table.add_row(key.name, ",".join(key.scopes), ", ".join(limits) or "-", key.created)
    Printer().print(table)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from localllm.errors import LocalLLMError

    if not _file().remove(args.name):
        raise LocalLLMError(f"no key named {args.name!r} (localllm keys list)")
    print(f"removed key {args.name!r}")
    return 0
