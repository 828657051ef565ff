"""`localllm run MODEL [PROMPT]`, and `localllm` alone: chat with a model.

In a terminal without a prompt it opens the Textual chat; with a prompt or
with input piped in it streams the answer to stdout and exits, so scripts can
use it. Either way the model is pulled first if the store lacks it, through
the server (the one path every command and the TUI share).
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localllm.client import Client


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "run",
        help="chat with a model (pulls it first if needed)",
        description=(
            "Chat with MODEL. In a terminal without PROMPT: the full-screen chat. With PROMPT, "
            "or with input piped in, the answer is streamed to stdout (piped input follows the "
            "prompt). The model is pulled first if it is not in the store. A vision model "
            "reads the image files the prompt names (./photo.png, ~/shot.jpg)."
        ),
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("prompt", metavar="PROMPT", nargs="*", help="ask this and print the answer")
    p.add_argument(
        "--verbose", action="store_true", help="print token counts and tokens/s after the answer"
    )
    p.add_argument(
        "--hidethinking", action="store_true", help="leave out a reasoning model's thinking"
    )
    p.add_argument("--format", choices=["json"], help="ask for a JSON answer")
    p.add_argument(
        "--keepalive", metavar="DURATION", help="how long the model stays loaded (5m, 1h, 0, -1)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from localllm.cli.server import client
    from localllm.errors import LocalLLMError

    args.model = import_local(args.model)
    prompt = " ".join(args.prompt)
    piped = not sys.stdin.isatty()
    if not prompt and not piped and sys.stdout.isatty():
        # The chat pulls a missing model itself (plan and progress on its Models
        # screen), so it paints at once either way.
        return run_home(args, args.model)
    with client() as c:
        shown = ensure_pulled(c, args.model)
        if sys.stderr.isatty():
            _load_saying_so(c, str(shown.get("name") or args.model))
        stdin = sys.stdin.read() if piped else ""
        if stdin.strip():
            prompt = f"{prompt}\n\n{stdin}" if prompt else stdin
        if not prompt.strip():
            raise LocalLLMError("nothing to ask: give a PROMPT or pipe some text in")
        fields: dict[str, Any] = {}
        images: list[str] = []
        if "vision" in (shown.get("capabilities") or ()):
            prompt, images = _attach(prompt, sys.stderr)
        if args.format:
            fields["format"] = args.format
        if args.keepalive is not None:
            fields["keep_alive"] = args.keepalive
        done = answer(
            c, args.model, prompt, fields, sys.stdout, sys.stderr, not args.hidethinking, images
        )
    if args.verbose:
        for line in stats_lines(done):
            print(line, file=sys.stderr)
    return 0


def run_home(args: argparse.Namespace, model: str | None = None) -> int:
    """The TUI: a chat with `model`, else (`localllm` with no command) the chats."""
    from localllm.paths import resolve_paths
    from localllm.server.daemon import ensure_running
    from localllm.server.settings import settings_from_env
    from localllm.tui import run_app

    settings, paths = settings_from_env(), resolve_paths()
    ensure_running(settings, paths)
    run_app(settings.url, settings.api_key, paths.history_file, model)
    return 0


def import_local(model: str) -> str:
    """A GGUF file of this machine named as the model: imported into the store by this
    process (the server reads no local path through its API), and its stored name."""
    from pathlib import Path

    path = Path(model).expanduser()
    if not (model.lower().endswith(".gguf") and path.is_file()):
        return model
    from localllm.cli.pull import open_store
    from localllm.planner.machine import planner_for_this_machine
    from localllm.store.resolve import pull

    print(f"importing {path}...", file=sys.stderr)
    return pull(str(path), open_store(), planner_for_this_machine()).name.removesuffix(":latest")


def _load_saying_so(c: Client, name: str) -> None:
    """Load the model first, saying so: a first load takes seconds, and a silent
    terminal looks stuck."""
    from localllm.units import format_bytes

    if any(m.get("name") == name for m in c.ps()):
        return
    size = next((m.get("size") for m in c.tags() if m.get("name") == name), None)
    print(f"loading {name} ({format_bytes(size)})...", file=sys.stderr, end="", flush=True)
    c.load(name)
    loaded = next((m for m in c.ps() if m.get("name") == name), {})
    where = "on the GPU" if loaded.get("size_vram") else "on the CPU"
    print(f" ready, {where}", file=sys.stderr, flush=True)


def ensure_pulled(c: Client, model: str) -> dict[str, Any]:
    """Pull `model` through the server when the store lacks it, showing the plan and bars;
    returns what `/api/show` says of it."""
    from localllm.client import ServerError

    try:
        return c.show(model)
    except ServerError as exc:
        if exc.status != 404:
            raise
    from rich.console import Console

    from localllm.cli.pull import progress_bars

    console = Console(stderr=True)
    bars = progress_bars(console)
    tasks: dict[str, Any] = {}
    console.print(f"pulling {model}...", highlight=False)
    try:
        for event in c.pull(model):
            if "plan" in event:
                for line in event["plan"]:
                    console.print(f"  {line}", highlight=False)
            elif event.get("total") and event.get("digest"):
                if event["digest"] not in tasks:
                    bars.start()
                    name = str(event["status"]).removeprefix("pulling ")
                    tasks[event["digest"]] = bars.add_task(name, total=event["total"])
                bars.update(tasks[event["digest"]], completed=event.get("completed", 0))
    finally:
        bars.stop()
    return c.show(model)


def answer(
    c: Client,
    model: str,
    prompt: str,
    fields: dict[str, Any],
    out: IO[str],
    err: IO[str],
    show_thinking: bool = True,
    images: list[str] | None = None,
) -> dict[str, Any]:
    """Stream the answer to `out` (the server's `thinking` to `err`, so a pipe gets only
    the answer); returns the final chunk with the timings."""
    from localllm.reasoning import chunk_parts

    thinking = False
    message: dict[str, Any] = {"role": "user", "content": prompt}
    if images:
        message["images"] = images
    messages = [message]
    done: dict[str, Any] = {}
    for chunk in c.chat(model, messages, **fields):
        parts = chunk_parts(chunk)
        if chunk.get("done"):
            done = chunk
        for kind, text in parts:
            if kind == "thinking":
                if show_thinking:
                    if not thinking:
                        err.write("Thinking...\n")
                    err.write(text)
                    err.flush()
                thinking = True
                continue
            if thinking:
                if show_thinking:
                    err.write("\n...done thinking.\n\n")
                    err.flush()
                thinking = False
            out.write(text)
            out.flush()
    out.write("\n")
    out.flush()
    return done


def _attach(prompt: str, err: IO[str]) -> tuple[str, list[str]]:
    """The prompt without the image paths it names, and those images (base64), as
    Ollama's CLI attaches them for a vision model."""
    import base64
    from pathlib import Path

    from localllm.attachments import find_images

    found = find_images(prompt, Path.cwd())
    for a in found.attachments:
        err.write(f"Added image '{a.path}'\n")
    return found.text, [base64.b64encode(a.data).decode() for a in found.attachments]


def stats_lines(done: dict[str, Any]) -> list[str]:
    """Ollama's `--verbose` block: durations, token counts and rates."""

    def seconds(key: str) -> float:
        return float(done.get(key, 0)) / 1e9

    def rate(count: str, duration: str) -> str:
        d = seconds(duration)
        return f"{done.get(count, 0) / d:.2f} tokens/s" if d else "n/a"

    return [
        f"total duration:       {seconds('total_duration'):.3f}s",
        f"load duration:        {seconds('load_duration'):.3f}s",
        f"prompt eval count:    {done.get('prompt_eval_count', 0)} token(s)",
        f"prompt eval duration: {seconds('prompt_eval_duration'):.3f}s",
        f"prompt eval rate:     {rate('prompt_eval_count', 'prompt_eval_duration')}",
        f"eval count:           {done.get('eval_count', 0)} token(s)",
        f"eval duration:        {seconds('eval_duration'):.3f}s",
        f"eval rate:            {rate('eval_count', 'eval_duration')}",
    ]
