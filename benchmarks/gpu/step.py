"""One decode step at many streams, in one process: where the time goes beside the GPU.

    python benchmarks/gpu/step.py --model MODEL.gguf [--streams 8 32 64] [--out FILE]

`llama-batched-bench` times a bare loop: N tokens (one per sequence) into
`llama_decode`, synchronise, again; it never reads the logits. The engine does
more each step, and this script adds it one thing at a time on the same model,
each row a fresh context with every layer on the GPU:

1. the bare loop on batched-bench's context (320 cells per sequence), then on a
   context as large as the server gives each slot;
2. with llama.cpp's backend sampling configured (the engine's context) and the
   chains detached, as the engine runs plain greedy streams in a busy batch, with
   the host's argmax over all rows (`engine.greedy`); with llama.cpp's greedy chain
   per sequence in the graph instead (only token ids cross to the host); and with
   the engine's own chains, one argmax of every row (`engine.graph_argmax`), each
   row's result copied to the host on its own or all in one copy;
3. the engine itself (`engine.batch.Engine`): N greedy requests admitted at once,
   `--tokens` each, its own step profile (`engine.profile`); again with prompt lookup
   off (what its guesses cost where they never agree), and with decode ahead off
   (`engine.ahead`: what launching the next decode before the bookkeeping saves).

`--overlap` runs the engine's overlapped step (a GPU's) on any device: decode ahead
can then be checked on a CPU.

Prints a Markdown table (milliseconds per step, tokens/s) and writes it to FILE.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import llama_cpp  # before numpy: numpy first made CUDA loads crash on the GPU machine

from localllm.engine import graph_argmax
from localllm.engine.batch import Engine
from localllm.engine.greedy import GreedyRows
from localllm.engine.model import LlamaModel, greedy_chain
from localllm.engine.profile import StepProfile, breakdown
from localllm.engine.protocol import Done, Generate, Sampling
from localllm.engine.tokenbatch import TokenBatch
from localllm.planner.settings import LoadSettings

PROMPT = 128
"""Prompt tokens per sequence in the bare loops (batched-bench's `-npp 128`)."""

LAST: dict[tuple[str, int], list[int]] = {}
"""The last step's tokens of the bare loops that read them, by (read, streams): the
same seeded inputs give the same logits, so the graph's argmax must match the host's."""


SAME_COPY: dict[int, bool] = {}
"""By streams: whether every pair in one copy gave the tokens of a copy a row."""


def settings_for(streams: int, slot_ctx: int, threads: int, sampling: bool) -> LoadSettings:
    return LoadSettings(
        n_gpu_layers=999, n_ctx=slot_ctx * streams, n_batch=2048, n_ubatch=512,
        n_seq_max=streams, flash_attn=True, n_threads=threads, backend_sampling=sampling,
    )  # fmt: skip


def bare(model: LlamaModel, streams: int, steps: int, read: str, threads: int) -> dict[str, float]:
    """Milliseconds per step of a bare decode loop: `read` is "none" (batched-bench),
    "host" (every row's argmax off the host logits), "graph" (the tokens llama.cpp's
    chains sampled) or "pairs" (the engine's argmax of every row)."""
    ctx, n_vocab = model.ctx, model.n_vocab
    llama_cpp.llama_memory_clear(model.memory, True)
    rng = random.Random(0)
    batch = TokenBatch(max(2048, streams))
    for seq in range(streams):  # each sequence its own prompt
        for i in range(PROMPT):
            batch.put(i, rng.randrange(n_vocab), i, seq, i == PROMPT - 1)
        if batch.decode(ctx, PROMPT) != 0:
            raise SystemExit("prompt decode failed")
    llama_cpp.llama_synchronize(ctx)
    greedy = GreedyRows(n_vocab, (), threads)
    rows = [(i, False) for i in range(streams)]
    decode_ms, read_ms = [], []
    for step in range(steps):
        for seq in range(streams):
            batch.put(seq, rng.randrange(n_vocab), PROMPT + step, seq, True)
        t0 = time.perf_counter()
        if batch.decode(ctx, streams) != 0:
            raise SystemExit("decode failed")
        llama_cpp.llama_synchronize(ctx)
        t1 = time.perf_counter()
        picked: dict[int, int] = {}
        if read == "host":
            picked = greedy.tokens(ctx, rows)
        elif read == "graph":  # llama.cpp's own chains
            for i in range(streams):
                llama_cpp.llama_get_sampled_token_ith(ctx, i)
        elif read == "pairs":  # the engine's (`engine.graph_argmax`)
            picked = graph_argmax.tokens(ctx, n_vocab, [(i, i, False) for i in range(streams)])
        t2 = time.perf_counter()
        if read in ("host", "pairs"):
            LAST[read, streams] = [picked[i] for i in range(streams)]
        decode_ms.append((t1 - t0) * 1e3)
        read_ms.append((t2 - t1) * 1e3)
    greedy.close()
    batch.close()
    decode, sample = statistics.median(decode_ms), statistics.median(read_ms)
    return {"decode": decode, "sample": sample, "step_ms": decode + sample,
            "tok_s": streams / (decode + sample) * 1e3}  # fmt: skip


def engine_run(
    model: LlamaModel,
    streams: int,
    tokens: int,
    lookup: bool = True,
    rounds: int = 3,
    overlap: bool | None = None,
    ahead: bool = True,
) -> dict[str, float]:
    """The engine on `streams` greedy requests admitted at once, `rounds` times in a row
    (as a server takes one request after another): its step profile, and tokens/s from
    the first step to the last. `lookup`: whether they may guess; `overlap` and `ahead`:
    the engine's own switches (None: its choice for the device)."""
    llama_cpp.llama_memory_clear(model.memory, True)
    profile = StepProfile()
    engine = Engine(model, profile, overlap=overlap)
    engine.ahead = ahead
    greedy = Sampling(temperature=0, repeat_penalty=1.0, num_predict=tokens, ignore_eos=True,
                      prompt_lookup=lookup)  # fmt: skip
    done = 0
    start = time.perf_counter()
    for r in range(rounds):
        for i in range(streams):
            prompt = f"{r}.{i} Once upon a time"
            engine.submit(Generate(r * streams + i + 1, prompt=prompt, sampling=greedy))
        while engine.busy:
            done += sum(isinstance(e, Done) for e in engine.step())
    wall = time.perf_counter() - start
    if done != streams * rounds:
        raise SystemExit(f"{streams * rounds - done} of {streams * rounds} requests did not finish")
    out = breakdown(None, {"steps": profile.steps, "tokens": profile.tokens,
                           "backend": profile.backend, "drafted": profile.drafted,
                           "agreed": profile.agreed, "ahead": profile.ahead,
                           "ns": profile.ns})  # fmt: skip
    out["step_ms"] = wall / max(profile.steps, 1) * 1e3
    out["tok_s"] = streams * tokens * rounds / wall
    engine.close()
    return out


QUICK = ("bare, one argmax", "engine (", "engine, decode ahead off")
"""What `--quick` measures, beside the bare loop at the slots' context."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--slot-ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--overlap", action="store_true", help="the GPU's step on any device")
    parser.add_argument("--quick", action="store_true",
                        help="for a short lease: the bare loop, the engine's chains, the "
                        "engine with decode ahead on and off")  # fmt: skip
    args = parser.parse_args()
    overlap = True if args.overlap else None
    top = max(args.streams)
    paths = (str(args.model),)
    rows: list[tuple[str, int, dict[str, float]]] = []

    def measure(
        name: str, s: LoadSettings, run: Callable[[LlamaModel, int], dict[str, float]]
    ) -> None:
        if args.quick and not name.startswith((*QUICK, f"bare, {args.slot_ctx} ")):
            return
        model = LlamaModel(paths, s, (), keep_log=200)
        try:
            for n in args.streams:
                rows.append((name, n, run(model, n)))
                print(f"  {name}, {n} streams: {rows[-1][2]}", file=sys.stderr)
        finally:
            model.close()

    t = args.threads
    bench_ctx = settings_for(top, 320, t, sampling=False)
    slot_ctx = settings_for(top, args.slot_ctx, t, sampling=False)
    engine_ctx = replace(slot_ctx, backend_sampling=True)
    measure("bare, batched-bench's context (320 cells a sequence)", bench_ctx,
            lambda m, n: bare(m, n, args.steps, "none", t))  # fmt: skip
    measure(f"bare, {args.slot_ctx} cells a sequence", slot_ctx,
            lambda m, n: bare(m, n, args.steps, "none", t))  # fmt: skip
    for threads in sorted({t, 2 * t}):
        host = functools.partial(_bare_host, steps=args.steps, threads=threads)
        measure(f"bare + host argmax of every row, {threads} threads", slot_ctx, host)
    measure("bare, sampling configured, chains detached, host argmax", engine_ctx,
            lambda m, n: detached(m, n, args.steps, t))  # fmt: skip
    measure("bare, llama.cpp's greedy chain per sequence in the graph", engine_ctx,
            lambda m, n: own_chains(m, n, args.steps, t))  # fmt: skip
    measure("bare, one argmax of every row in the graph (the engine's chains)", engine_ctx,
            lambda m, n: bare(m, n, args.steps, "pairs", t))  # fmt: skip
    measure("bare, one argmax of every row, every pair in one copy", engine_ctx,
            lambda m, n: one_copy(m, n, args.steps, t))  # fmt: skip
    measure("engine (localllm's step, greedy requests)", engine_ctx,
            lambda m, n: engine_run(m, n, args.tokens, overlap=overlap))  # fmt: skip
    measure("engine, prompt lookup off", engine_ctx,
            lambda m, n: engine_run(m, n, args.tokens, lookup=False, overlap=overlap))  # fmt: skip
    measure("engine, decode ahead off", engine_ctx,
            lambda m, n: engine_run(m, n, args.tokens, overlap=overlap, ahead=False))  # fmt: skip
    table = report(args, rows)
    same = {n: LAST.get(("host", n)) == LAST.get(("pairs", n)) for n in args.streams}
    if not args.quick:  # (the host argmax is not run then)
        table += (
            "\nThe graph's argmax gives the host argmax's tokens: "
            + ", ".join(f"{n} streams {'yes' if ok else 'NO'}" for n, ok in same.items())
            + "\n"
        )
    if SAME_COPY:
        table += (
            "\nEvery pair in one copy gives the tokens of a copy a row: "
            + ", ".join(f"{n} streams {'yes' if ok else 'NO'}" for n, ok in SAME_COPY.items())
            + "\n"
        )
    print(table)
    if args.out:
        args.out.write_text(table)


def _bare_host(model: LlamaModel, streams: int, steps: int, threads: int) -> dict[str, float]:
    return bare(model, streams, steps, "host", threads)


def detached(model: LlamaModel, streams: int, steps: int, threads: int) -> dict[str, float]:
    """The bare loop with host argmax on a context made for backend sampling whose
    chains are all detached: what the engine runs for plain greedy streams."""
    for seq in range(model.settings.n_seq_max):
        model.use_sampler(seq, None)
    return bare(model, streams, steps, "host", threads)


def own_chains(model: LlamaModel, streams: int, steps: int, threads: int) -> dict[str, float]:
    """The bare loop with llama.cpp's own greedy chain on every sequence: an argmax
    subgraph each."""
    chains = [greedy_chain() for _ in range(model.settings.n_seq_max)]
    for seq, chain in enumerate(chains):
        model.use_sampler(seq, chain)
    try:
        return bare(model, streams, steps, "graph", threads)
    finally:
        for seq, chain in enumerate(chains):
            model.use_sampler(seq, None)
            llama_cpp.llama_sampler_free(chain)


def one_copy(model: LlamaModel, streams: int, steps: int, threads: int) -> dict[str, float]:
    """The bare loop on the engine's chains handing every row's pair over through the
    first row (`GraphArgmax.whole`): one copy to the host a step instead of one a row."""
    assert model.argmax is not None
    model.argmax.whole = True
    apart = LAST.get(("pairs", streams))
    try:
        return bare(model, streams, steps, "pairs", threads)
    finally:
        model.argmax.whole = False
        SAME_COPY[streams] = apart == LAST.get(("pairs", streams))


COLUMNS = ("decode", "sample", "accept", "send", "admit", "batch", "ahead_share", "step_ms",
           "tok_s")  # fmt: skip


def report(args: argparse.Namespace, rows: list[tuple[str, int, dict[str, float]]]) -> str:
    where = "every layer offloaded (on the CPU where the build has no GPU)"
    if args.overlap:
        where += ", the engine's overlapped step"
    lines = [
        f"model: {args.model.name}, {where}, flash attention, {args.threads} "
        f"threads; bare loops: {PROMPT}-token prompts, median of {args.steps} steps; "
        f"engine: {args.tokens} tokens a request",
        "",
        "| what | streams | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, n, values in rows:
        cells = [f"{values[c]:.3f}" if c in values else "" for c in COLUMNS[:-1]]
        cells.append(f"{values['tok_s']:.0f}")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
