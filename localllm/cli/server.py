"""`localllm serve`, `ps` and `stop`: the server and the models it has loaded."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from localllm.units import format_bytes

if TYPE_CHECKING:
    from localllm.paths import Paths
    from localllm.server.settings import ServerSettings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the server in the foreground (Ollama-, OpenAI- and Anthropic-compatible APIs)",
        description=(
            "Serve the local models over HTTP: Ollama's /api and OpenAI's /v1 endpoints. "
            "Listens on 127.0.0.1:11435 unless LOCALLLM_HOST says otherwise; beyond "
            "loopback it needs API keys (`localllm keys`, or LOCALLLM_API_KEY; or --insecure). "
            "Other settings: "
            "LOCALLLM_ORIGINS, LOCALLLM_ALLOWED_HOSTS, LOCALLLM_KEEP_ALIVE, "
            "LOCALLLM_MAX_QUEUE, LOCALLLM_MAX_LOADED_MODELS, LOCALLLM_NUM_PARALLEL, "
            "LOCALLLM_REPLICAS, LOCALLLM_WORKERS; limits: LOCALLLM_MAX_BODY_MB, "
            "LOCALLLM_MAX_CONNECTIONS, LOCALLLM_REQUEST_TIMEOUT, LOCALLLM_IDLE_TIMEOUT "
            "(docs/server.md); LOCALLLM_NOPRUNE=1 keeps what crashes left in the store."
        ),
    )
    p.add_argument("--workers", default="", metavar="HOST:PORT,...",
                   help="RPC workers (`localllm worker` on other machines) that models may "
                        "be split onto (default: LOCALLLM_WORKERS)")  # fmt: skip
    p.add_argument("--insecure", action="store_true",
                   help="allow listening beyond loopback without an API key")  # fmt: skip
    p.add_argument("--allow-files", action="append", default=[], metavar="DIR",
                   help="let /api/create and /api/pull name files under DIR on this machine "
                        "(repeatable; by default the API reads no server-local path: clients "
                        "upload blobs)")  # fmt: skip
    p.add_argument("--require-keys", action="store_true",
                   help="ask an API key (`localllm keys`) of loopback clients too")  # fmt: skip
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument("--stop", action="store_true",
                   help="stop the running server of this LOCALLLM_HOME (the one `run` and "
                        "`ps` start in the background): streams end with an error, "
                        "models unload")  # fmt: skip
    p.set_defaults(handler=run_serve)
    p = subparsers.add_parser("ps", help="list the loaded models (starts the server if needed)")
    p.add_argument("--json", action="store_true", help="print the server's JSON")
    p.set_defaults(handler=run_ps)
    p = subparsers.add_parser("stop", help="unload a model now")
    p.add_argument("model", metavar="MODEL")
    p.set_defaults(handler=run_stop)


def run_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from localllm.paths import resolve_paths
    from localllm.server.daemon import identify, recorded
    from localllm.server.settings import settings_from_env

    paths = resolve_paths()
    settings = settings_from_env(
        insecure=args.insecure, workers=args.workers, allow_files=tuple(args.allow_files)
    )
    settings = replace(settings, keys_file=paths.keys_file, require_keys=args.require_keys,
                       tls_cert=args.tls_cert, tls_key=args.tls_key,
                       prompt_cache_dir=paths.cache_dir / "prompts")  # fmt: skip
    if args.stop:
        return stop_server(settings, paths)
    from localllm.server.serve import serve
    from localllm.store.store import Store

    settings.check()
    already = identify(settings)
    if already is not None:
        from localllm.errors import LocalLLMError

        who = f"pid {already.pid}, " if already.pid else ""
        what = f"models in {already.models}" if already.models else "another program"
        raise LocalLLMError(
            f"a server already answers at {settings.url} ({who}{what}); "
            "`localllm serve --stop` stops this home's, or set LOCALLLM_HOST to another address"
        )
    with recorded(paths, settings) as forget:
        serve(settings, Store(paths.models_dir), paths.log_dir, on_stop=forget)
    return 0


def stop_server(settings: ServerSettings, paths: Paths) -> int:
    """`serve --stop`: end this home's server, or say that none runs."""
    from localllm.server.daemon import find_server, stop

    pid = find_server(settings, paths)
    if pid is None:
        print(f"no localllm server is running for the models in {paths.models_dir}")
        return 0
    print(f"stopping the server (pid {pid})...", flush=True)
    if stop(pid):
        print("stopped")
    else:
        print("it did not stop in time and was killed")
    return 0


def client() -> Any:
    """A client for the server, started in the background if it was not running."""
    from localllm.client import Client
    from localllm.paths import resolve_paths
    from localllm.server.daemon import answers, ensure_running
    from localllm.server.settings import settings_from_env

    settings = settings_from_env()
    tell = sys.stderr.isatty()
    if tell and not answers(settings):
        print(f"starting the server at {settings.url}...", file=sys.stderr, flush=True)
    ensure_running(settings, resolve_paths())
    return Client(settings.url, settings.api_key)


def run_ps(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    with client() as c:
        models, workers = c.ps(), c.workers()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("no models loaded")
    else:
        print(f"{'NAME':<32}{'SIZE':>10}  {'PROCESSOR':<16}{'CONTEXT':>8}{'SLOTS':>6}  UNTIL")
    for m in models:
        vram, size = m.get("size_vram", 0), m.get("size", 0)
        placed = m.get("placement", [])
        remote = sum(p["bytes"] for p in placed if p["host"] != "this machine")
        if remote:
            where = f"{100 * remote // max(size, 1)}% on workers"
        elif vram and vram >= size:
            where = "100% GPU"
        elif vram:
            where = f"{100 * (size - vram) // size}%/{100 * vram // size}% CPU/GPU"
        else:
            where = "100% CPU"
        until = datetime.fromisoformat(m["expires_at"].replace("Z", "+00:00")).astimezone()
        context, slots = m.get("context_length", 0), m.get("parallel", 1)
        print(f"{m['name'].removesuffix(':latest'):<32}{format_bytes(size):>10}  {where:<16}"
              f"{context:>8}{slots:>6}  {until:%H:%M:%S}")  # fmt: skip
        if remote:
            for p in placed:
                print(f"    {p['host']} {p['device']}: {p['layers']} layers, "
                      f"{format_bytes(p['bytes'])}")  # fmt: skip
        for n, copy in enumerate(m.get("copies", []), start=2):
            gpus = [p["device"] for p in copy["placement"] if p["device"] != "CPU and RAM"]
            print(f"    copy {n} on {', '.join(gpus) or 'the CPU'}: {copy['busy']} busy")
        if m.get("fallback"):  # llama.cpp crashed loading it the usual way (`workers.fallback`)
            print(f"    loaded with {m['fallback']}: llama.cpp crashed loading it otherwise")
        if m.get("tip"):
            print(f"    tip: {m['tip']}")
        spec = m.get("speculation") or {}
        if spec.get("drafted"):
            print(f"    {spec['drafter']}: {100 * spec['acceptance']:.0f}% of "
                  f"{spec['drafted']} guesses taken, {spec['tokens_per_pass']} tokens "
                  f"per pass")  # fmt: skip
    for w in workers:
        state = "listening" if w["listening"] else f"down ({w.get('error') or 'not listening'})"
        holds = f", holds {w['model']}" if w.get("model") else ""
        print(f"worker {w['endpoint']}: {state}{holds}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    with client() as c:
        c.stop(args.model)
    print(f"stopped '{args.model}'")
    return 0
