"""`localllm worker`: serve this machine's CPU or GPUs to a localllm server elsewhere."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "serve this machine's CPU or GPUs to a localllm server elsewhere (llama.cpp RPC)"
EXPOSED = (
    "llama.cpp's RPC protocol has no authentication and no encryption: anyone who can "
    "reach {endpoint} can use this machine's {devices} and read what it holds. Run it "
    "only on a network you trust, or keep it on loopback and reach it through an SSH "
    "tunnel (ssh -N -L {port}:127.0.0.1:{port} THIS-HOST)."
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help=HELP,
        description=(
            "Serve this machine's devices through llama.cpp's RPC server, so a localllm "
            "server elsewhere (serve --workers HOST:PORT) can put part of a model here. "
            "Listens on loopback unless told otherwise. " + EXPOSED.format(
                endpoint="its address", devices="devices", port=50052)
        ),
    )  # fmt: skip
    parser.add_argument(
        "--listen",
        default="127.0.0.1:50052",
        metavar="ADDR:PORT",
        help="where to listen (default 127.0.0.1:50052)",
    )
    parser.add_argument(
        "--devices",
        default="",
        metavar="NAMES",
        help="comma-separated ggml device names (default: the GPUs, else the CPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for a CPU device (default: the physical cores)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="where to keep the tensors sent (default: localllm's cache)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="keep no tensor cache: every load sends the weights again",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback (see above for what that exposes)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import psutil

    from localllm.errors import LocalLLMError
    from localllm.paths import resolve_paths
    from localllm.remote import rpc
    from localllm.remote.workers import parse_endpoint, split
    from localllm.server.settings import is_loopback

    endpoint = parse_endpoint(args.listen)
    host, port = split(endpoint)
    if not is_loopback(host) and not args.insecure:
        raise LocalLLMError(
            f"refusing to listen on {endpoint}, beyond loopback, without --insecure: "
            + EXPOSED.format(endpoint=endpoint, devices="devices", port=port)
        )
    local = rpc.local_devices()
    if args.devices:
        names = [n.strip() for n in args.devices.split(",") if n.strip()]
        by_name = {d.name: d for d in local}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            have = ", ".join(f"{d.name} ({d.description})" for d in local)
            raise LocalLLMError(f"no device named {', '.join(unknown)}; this machine has {have}")
        devices = [by_name[n] for n in names]
    else:
        devices = [d for d in local if d.kind in ("gpu", "igpu")] or [
            d for d in local if d.kind == "cpu"
        ]
    cache = None if args.no_cache else Path(args.cache or resolve_paths().cache_dir / "rpc")
    threads = args.threads or psutil.cpu_count(logical=False) or 1
    listed = ", ".join(f"{d.name} ({d.description}, {d.free >> 20} MiB free)" for d in devices)
    print(f"localllm worker at {endpoint}: serving {listed}", flush=True)
    if not is_loopback(host):
        print("WARNING: " + EXPOSED.format(endpoint=endpoint, devices=listed, port=port),
              file=sys.stderr, flush=True)  # fmt: skip
    rpc.serve(endpoint, devices, threads, cache)
    return 1
