"""The concurrency benchmark's tables and plot (`benchmarks/concurrency.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks._step_profile import KEYS

if TYPE_CHECKING:
    from benchmarks.concurrency import Result


def best_server(results: list[Result], n: int) -> Result | None:
    """The fastest llama-server run at `n` streams (defaults or `--fast-flags`): what
    every ratio is taken against."""
    servers = [r for r in results if r.engine.startswith("llama-server") and r.aggregate.get(n)]
    return max(servers, key=lambda r: r.aggregate[n], default=None)


def spread(result: Result, n: int) -> str:
    """The median and, over several runs, their range: "652 (640-661)"."""
    runs = result.runs.get(n, [])
    if len(runs) < 2:
        return f"{result.aggregate[n]:.0f}"
    return f"{result.aggregate[n]:.0f} ({min(runs):.0f}-{max(runs):.0f})"


def report(
    results: list[Result], args: argparse.Namespace, path: Path, ceiling: dict[int, float]
) -> None:
    levels = args.levels
    print(f"model: {path.name} ({path.stat().st_size / 2**20:.0f} MiB), {args.threads} threads, "
          f"{args.ngl} GPU layers, {args.slot_ctx} tokens of context per slot, "
          f"{args.tokens} new tokens per stream, greedy, median of {args.repeat} runs "
          "(their range)\n")  # fmt: skip
    print("Aggregate decode tokens/s (N streams at once; x: against the fastest llama-server "
          "at that level)\n")  # fmt: skip
    print("| engine | " + " | ".join(f"{n} stream{'s' * (n > 1)}" for n in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for r in results:
        cells = []
        for n in levels:
            if n not in r.aggregate:
                cells.append("-")
                continue
            cell = spread(r, n)
            base = best_server(results, n)
            if base is not None:
                cell += f" ({r.aggregate[n] / base.aggregate[n]:.2f}x)"
            if r.errors.get(n):
                cell += f", {r.errors[n]} failed"
            cells.append(cell)
        print(f"| {r.engine} | " + " | ".join(cells) + " |")
    if ceiling:
        print("\nShare of llama-batched-bench's S_TG (same model and build, no HTTP, no "
              "sampling)\n")  # fmt: skip
        print("| engine | " + " | ".join(f"{n}" for n in levels) + " |")
        print("|---|" + "---|" * len(levels))
        print("| llama-batched-bench S_TG | "
              + " | ".join(f"{ceiling.get(n, 0):.0f}" for n in levels) + " |")  # fmt: skip
        for r in results:
            cells = [f"{r.aggregate[n] / ceiling[n]:.0%}" if n in r.aggregate and ceiling.get(n)
                     else "-" for n in levels]  # fmt: skip
            print(f"| {r.engine} | " + " | ".join(cells) + " |")
    for r in (r for r in results if r.profile):
        print(f"\nWhere a step's time goes, {r.engine} (ms per step; CPU ms per token)\n")
        print("| streams | " + " | ".join(KEYS) + " |")
        print("|---|" + "---|" * len(KEYS))
        for n, p in sorted(r.profile.items()):
            print(f"| {n} | " + " | ".join(f"{p.get(k, 0):.3f}" for k in KEYS) + " |")
    print("\nPer stream decode tokens/s / time to first token, median over the streams\n")
    print("| engine | " + " | ".join(f"{n}" for n in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for r in results:
        cells = [
            f"{r.per_stream[n]:.1f} / {r.ttft[n]:.2f} s" if n in r.per_stream else "-"
            for n in levels
        ]
        print(f"| {r.engine} | " + " | ".join(cells) + " |")
    print("\nCommand lines\n")
    for r in results:
        print(f"- {r.engine}: `{r.command or 'in process'}`")
    if args.batched_bench_command:
        print(f"- llama-batched-bench: `{args.batched_bench_command}`")
    chats = [r for r in results if r.chat_warm]
    if chats:
        print(f"\n{args.chat_turns}-turn chat, time to first token (s): continuing / cold\n")
        print("| turn | prompt tokens | " + " | ".join(r.engine for r in chats) + " |")
        print("|---|---|" + "---|" * len(chats))
        for i in range(args.chat_turns):
            cells = [f"{r.chat_warm[i]:.2f} / {r.chat_cold[i]:.2f}" for r in chats]
            print(f"| {i + 1} | {chats[0].chat_prompt[i]} | " + " | ".join(cells) + " |")


def plot(results: list[Result], levels: list[int], title: str, out: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("no matplotlib: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for r in results:
        xs = [n for n in levels if n in r.aggregate]
        ax.plot(xs, [r.aggregate[n] for n in xs], marker="o", label=r.engine)
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate decode tokens/s")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
