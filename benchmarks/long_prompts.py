"""Long prompts: prefill speed, time to first token, and how long running streams stall.

    python benchmarks/long_prompts.py --small --sizes 512 1024 --streams 4   # a quick look
    benchmarks/gpu/run.sh long                                               # on a GPU

The same model, slots and per-slot context for every server, one server at a time
(a long context's cache is large), OpenAI `/v1/completions`, greedy:

1. **Prefill**: one prompt of each size (4k, 16k, 32k tokens by default; new text
   each run, so nothing is reused), the time to its first token, median of
   `--repeat`; prefill tokens/s beside llama-batched-bench's S_PP on the same model
   (`-npp SIZE -ntg 1 -npl 1`, the same micro-batch); with `--decode-tokens N`, the
   tokens/s of the N - 1 after the first too (how fast an answer comes that deep in a
   chat). `--prefill-only` stops there.
2. **Concurrent long prompts**: `--streams` prompts of `--concurrent-size` tokens
   at once: the median and the slowest time to first token.
3. **Stalls**: `--streams` streams decode `--stall-tokens` tokens each; a prompt
   of `--stall-size` tokens arrives while they run. The gaps between two tokens
   of a running stream, as its client sees them (median, p99, worst), without the
   long prompt and with it, and the worst gap while it is taken in. Each gap over
   50 ms says how many of the running streams it held at once: a step that holds
   the batch holds them all, a slow delivery (a client's thread, one socket) one.
   The clients collect no garbage while they time.

Servers: localllm, and llama-server with its defaults and with its fastest flags
for long prompts (flash attention on, sampling in the graph, `-ub`/`-b` of 2048 as
its docs suggest); `--server-flags` chooses others. Prints the tables and writes
`benchmarks/results/long-prompts-TAG.json`; command lines included.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._batched_bench import batched_bench
from benchmarks._llama_server import llama_server
from benchmarks._models import add_workdir, bench_home, model_file, vocab_only
from benchmarks.concurrency import Engine, in_threads, sse, start, stop
from localllm.engine.profile import SLOW_NS, SLOW_PREFIX

RESULTS = Path(os.environ.get("LOCALLLM_BENCH_RESULTS") or Path(__file__).parent / "results")
"""Where the result files go (`LOCALLLM_BENCH_RESULTS`: elsewhere, as the GPU round does)."""
FAST_FLAGS = "-fa on --backend-sampling -ub 2048 -b 2048"
WORDS = (
    "river", "stone", "light", "garden", "paper", "window", "morning", "silver", "quiet",
    "number", "market", "letter", "forest", "engine", "winter", "story", "yellow", "bridge",
)  # fmt: skip


@dataclass
class Outcome:
    engine: str
    command: str
    prefill: dict[int, list[float]] = field(default_factory=dict)
    """Prompt tokens -> seconds to the first token, each run."""
    decode: dict[int, list[float]] = field(default_factory=dict)
    """Prompt tokens -> tokens/s of the `--decode-tokens` after the first, each run."""
    concurrent: list[float] = field(default_factory=list)
    """Seconds to the first token of each of the concurrent long prompts (all runs)."""
    gaps_without: list[float] = field(default_factory=list)
    gaps_with: list[float] = field(default_factory=list)
    """Seconds between two tokens of a running stream, without and with a long prompt."""
    gaps_during: list[float] = field(default_factory=list)
    """Of `gaps_with`, those that overlap the long prompt's way in."""
    long_ttft: float = 0.0
    """The long prompt's own time to first token, beside the running streams."""
    sent: list[float] = field(default_factory=list)
    """When each long prompt was sent (`time.perf_counter`: the worker's clock too)."""
    late: list[tuple[float, float, int, int]] = field(default_factory=list)
    """Every gap over 50 ms with the long prompt: (seconds from its send to the gap's
    start, the gap's seconds, how many streams it held, how many were running;
    `held`)."""


class Texts:
    """Prompts of an exact number of tokens for this model: words, cut by its tokenizer."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self._model = vocab_only(path)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        sample = " ".join(WORDS * 50)
        self._per_word = self.count(sample) / (len(WORDS) * 50)

    def count(self, text: str) -> int:
        import llama_cpp

        data = text.encode()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), None, 0, True, False)
        return -int(n)

    def make(self, tokens: int, seed: str) -> str:
        """Text of `tokens` tokens (or a few fewer), starting with `seed` (so each prompt
        is new to every cache): words enough, then cut to size by the tokenizer's count."""
        rng = random.Random(seed)
        words = [seed, *(rng.choice(WORDS) for _ in range(int(tokens / self._per_word) + 16))]
        k = len(words)
        while k > 1 and (n := self.count(" ".join(words[:k]))) > tokens:
            k -= max(1, int((n - tokens) / self._per_word))
        return " ".join(words[:k])


def first_token(url: str, prompt: str) -> float:
    """Seconds from sending `prompt` to its first token (the only one it asks for)."""
    return prompt_and_decode(url, prompt, 1)[0]


def prompt_and_decode(url: str, prompt: str, tokens: int) -> tuple[float, float]:
    """(seconds from sending `prompt` to its first token, tokens/s of the `tokens - 1`
    after it): how fast an answer comes this deep in a chat."""
    body = {"model": "bench", "prompt": prompt, "max_tokens": tokens, "temperature": 0,
            "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    first = last = 0.0
    pieces = count = 0
    with httpx.Client(timeout=900) as client:
        start = time.perf_counter()
        with client.stream("POST", f"{url}/v1/completions", json=body) as r:
            if r.status_code != 200:
                raise SystemExit(f"{r.status_code}: {r.read().decode()[:300]}")
            for chunk in sse(r):
                if (chunk.get("choices") or [{}])[0].get("text"):
                    last = time.perf_counter()
                    first = first or last
                    pieces += 1
                count = (chunk.get("usage") or {}).get("completion_tokens", count)
    n = count or pieces
    rate = (n - 1) / (last - first) if n > 1 and last > first else 0.0
    return (first or time.perf_counter()) - start, rate


def at_once(url: str, prompts: list[str]) -> list[float]:
    """These prompts sent together: each one's seconds to its first token."""
    times = [0.0] * len(prompts)

    def one(i: int) -> None:
        times[i] = first_token(url, prompts[i])

    in_threads(one, len(prompts))
    return times


def timed_streams(url: str, prompts: list[str], tokens: int, at: float) -> list[list[float]]:
    """These streams at once from `at` (a `perf_counter` reading, the same clock in every
    process): for each, the arrival time of every piece of text."""
    out: list[list[float]] = [[] for _ in prompts]
    clients = [httpx.Client(timeout=900) for _ in prompts]
    gc.collect()
    gc.disable()  # a collection pausing this client would read as the server's gap
    time.sleep(max(0.0, at - time.perf_counter()))

    def one(i: int) -> None:
        body = {"model": "bench", "prompt": prompts[i], "max_tokens": tokens,
                "temperature": 0, "stream": True, "ignore_eos": True}  # fmt: skip
        with clients[i], clients[i].stream("POST", f"{url}/v1/completions", json=body) as r:
            for chunk in sse(r):
                if (chunk.get("choices") or [{}])[0].get("text"):
                    out[i].append(time.perf_counter())

    in_threads(one, len(prompts))
    gc.enable()
    return out


def held(times: list[list[float]], start: float, end: float) -> tuple[int, int]:
    """(streams that got nothing in the middle half of [start, end], streams running
    across it): a step that holds the batch holds every running stream at once, where
    one slow delivery (a client's thread, a socket) holds one."""
    quarter = (end - start) / 4
    running = [s for s in times if s and s[0] <= start and s[-1] >= end]
    still = sum(not any(start + quarter < t < end - quarter for t in s) for s in running)
    return still, len(running)


def stall_run(
    url: str, pool: ProcessPoolExecutor, args: argparse.Namespace, long: str | None, run: int
) -> tuple[list[float], list[float], float, float, list[tuple[float, float, int, int]]]:
    """(every gap of every running stream, those overlapping the long prompt's way in,
    its time to first token, when it was sent, the gaps over 50 ms as (start after the
    send, length, streams held, streams running)) for one run; `long` None: without it."""
    k = pool._max_workers  # type: ignore[attr-defined]
    prompts = [f"{run}.{i} Once upon a time" for i in range(args.streams)]
    parts = [prompts[i::k] for i in range(k) if prompts[i::k]]
    at = time.perf_counter() + 0.2 + 0.03 * len(parts[0])
    futures = [pool.submit(timed_streams, url, p, args.stall_tokens, at) for p in parts]
    ttft, sent = 0.0, 0.0
    if long is not None:
        time.sleep(max(0.0, at + args.stall_after - time.perf_counter()))
        sent = time.perf_counter()
        ttft = first_token(url, long)
    times = [t for f in futures for t in f.result()]
    gaps, during, late = [], [], []
    for stamps in times:
        for a, b in itertools.pairwise(stamps):
            gaps.append(b - a)
            if long is not None and b > sent and a < sent + ttft:
                during.append(b - a)
            if long is not None and b - a > SLOW_NS / 1e9:
                late.append((a - sent, b - a, *held(times, a, b)))
    return gaps, during, ttft, sent, sorted(late)


def measure(engine: Engine, texts: Texts, args: argparse.Namespace) -> Outcome:
    out = Outcome(engine.name, engine.command)
    proc, url = start(engine)
    pool = ProcessPoolExecutor(args.clients, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(time.sleep, [0.0] * args.clients))  # started before anything is timed
    try:
        for size in args.sizes:
            first_token(url, texts.make(64, f"warm{size}"))
            for r in range(args.repeat):
                prompt = texts.make(size, f"{engine.name}-{size}-{r}")
                t, rate = prompt_and_decode(url, prompt, args.decode_tokens)
                out.prefill.setdefault(size, []).append(t)
                out.decode.setdefault(size, []).append(rate)
                print(f"  {engine.name}: {size} tokens in {t:.2f} s, then {rate:.1f} "
                      "tokens/s", file=sys.stderr)  # fmt: skip
        if args.prefill_only:
            return out
        for r in range(args.repeat):
            prompts = [texts.make(args.concurrent_size, f"c{r}-{i}") for i in range(args.streams)]
            out.concurrent += at_once(url, prompts)
        for r in range(args.repeat):
            gaps, *_ = stall_run(url, pool, args, None, r)
            out.gaps_without += gaps
            long = texts.make(args.stall_size, f"long-{engine.name}-{r}")
            gaps, during, ttft, sent, late = stall_run(url, pool, args, long, r + 100)
            out.gaps_with += gaps
            out.gaps_during += during
            out.sent.append(sent)
            out.late += late
            out.long_ttft = max(out.long_ttft, ttft)
            worst, alone = max(out.gaps_with) * 1e3, max(out.gaps_without) * 1e3
            print(f"  {engine.name}: worst gap {worst:.0f} ms with the long prompt, "
                  f"{alone:.0f} ms without", file=sys.stderr)  # fmt: skip
        return out
    finally:
        pool.shutdown()
        stop([proc])


def engines(path: Path, args: argparse.Namespace, home: Path) -> list[Engine]:
    slots = args.streams + 1
    ctx = args.slot_ctx

    def popen(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    env = {"LOCALLLM_NUM_PARALLEL": str(slots), "LOCALLLM_PROFILE": "1" if args.profile else ""}

    def localllm(port: int) -> subprocess.Popen[bytes]:
        where = {"LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}"}
        return popen([sys.executable, "-m", "localllm", "serve"], {**os.environ, **env, **where})

    def argv(flags: str, port: int) -> list[str]:
        binary = args.llama_server or llama_server(args.workdir)
        return [str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(ctx * slots), "-np", str(slots), "-t", str(args.threads),
                "-tb", str(args.threads), "-ngl", str(args.ngl), *flags.split()]  # fmt: skip

    def server(flags: str) -> Callable[[int], subprocess.Popen[bytes]]:
        return lambda port: popen(argv(flags, port))

    parameters = " ".join(f"{k}={v}" for k, v in args.model_parameters.items())
    out = [Engine("localllm", localllm, "/api/version", {},
                  command=f"LOCALLLM_NUM_PARALLEL={slots} localllm serve "
                  f"(model parameters: {parameters})")]  # fmt: skip
    for flags in [] if args.no_llama_server else args.server_flags or ["", FAST_FLAGS]:
        name = f"llama-server {flags}" if flags else "llama-server"
        shown = " ".join(argv(flags, 0)).replace("--port 0", "--port {port}")
        out.append(Engine(name, server(flags), "/health", {}, command=shown))
    return out


def prefill_ceiling(
    binary: Path, path: Path, args: argparse.Namespace
) -> tuple[dict[int, float], str]:
    """`llama-batched-bench`'s S_PP (prompt tokens/s, one sequence) at each size."""
    flags = ["-ngl", str(args.ngl), "-c", str(max(args.sizes) + 64), "-b", "2048",
             "-ub", str(args.ubatch), "-npp", ",".join(map(str, args.sizes)), "-ntg", "1",
             "-npl", "1", "-fa", "on", "-t", str(args.threads)]  # fmt: skip
    rows, command = batched_bench(binary, path, flags)
    return {int(r["PP"]): r["S_PP"] for r in rows}, command


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def report(outcomes: list[Outcome], ceiling: dict[int, float], args: argparse.Namespace,
           path: Path, bench_command: str) -> None:  # fmt: skip
    print(f"model: {path.name}, {args.ngl} GPU layers, {args.streams + 1} slots of "
          f"{args.slot_ctx} tokens, median of {args.repeat} runs\n")  # fmt: skip
    then = ""
    if args.decode_tokens > 1:
        then = f"; then tokens/s of the next {args.decode_tokens - 1}"
    print(f"1. Prefill: seconds to the first token (prefill tokens/s{then})\n")
    print("| engine | " + " | ".join(f"{n:,} tokens" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for o in outcomes:
        cells = []
        for n in args.sizes:
            t = statistics.median(o.prefill[n])
            rate = f"; {statistics.median(o.decode[n]):.1f}" if then else ""
            cells.append(f"{t:.2f} s ({n / t:,.0f}/s{rate})")
        print(f"| {o.engine} | " + " | ".join(cells) + " |")
    if ceiling:
        cells = [f"{ceiling.get(n, 0):,.0f}/s" for n in args.sizes]
        print("| llama-batched-bench S_PP | " + " | ".join(cells) + " |")
    if args.prefill_only:
        _commands(outcomes, bench_command)
        return
    print(f"\n2. {args.streams} prompts of {args.concurrent_size:,} tokens at once: time to "
          "first token, median / slowest\n")  # fmt: skip
    print("| engine | median | slowest |\n|---|---|---|")
    for o in outcomes:
        print(f"| {o.engine} | {statistics.median(o.concurrent):.2f} s | "
              f"{max(o.concurrent):.2f} s |")  # fmt: skip
    print(f"\n3. {args.streams} streams decoding; a {args.stall_size:,}-token prompt comes "
          f"{args.stall_after} s in. Gaps between two tokens of a stream, ms\n")  # fmt: skip
    print("| engine | without: median / p99 / worst | with: median / p99 / worst | "
          "worst while it is taken in | its first token |\n|---|---|---|---|---|")  # fmt: skip

    def three(gaps: list[float]) -> str:
        return (f"{statistics.median(gaps) * 1e3:.1f} / {percentile(gaps, 0.99) * 1e3:.1f} / "
                f"{max(gaps) * 1e3:.1f}")  # fmt: skip

    for o in outcomes:
        during = f"{max(o.gaps_during) * 1e3:.1f}" if o.gaps_during else "-"
        print(f"| {o.engine} | {three(o.gaps_without)} | {three(o.gaps_with)} | {during} | "
              f"{o.long_ttft:.2f} s |")  # fmt: skip
    for o in outcomes:
        late = ", ".join(f"{gap * 1e3:.0f} ms at {at * 1e3:+.0f} ({n} of {of} held)"
                         for at, gap, n, of in o.late[:30])  # fmt: skip
        steps = [gap for _, gap, n, of in o.late if 2 * n >= of]
        worst = f", the worst {max(steps) * 1e3:.0f} ms" if steps else ""
        print(f"\n{o.engine}: gaps over 50 ms with the long prompt, each at ms from its send "
              f"and with the running streams it held at once ({len(o.late)}): "
              f"{late or 'none'}. Of those, {len(steps)} held half the streams or more "
              f"(a step that held the batch){worst}")  # fmt: skip
    _commands(outcomes, bench_command)


def _commands(outcomes: list[Outcome], bench_command: str) -> None:
    print("\nCommand lines\n")
    for o in outcomes:
        print(f"- {o.engine}: `{o.command}`")
    if bench_command:
        print(f"- llama-batched-bench: `{bench_command}`")


def slow_steps(logs: Path, sent: list[float]) -> None:
    """The worker's steps over 50 ms beside generating streams (`--profile`; with the
    time it waited before them), the slowest first: what a stall is made of. Steps of
    prompts alone hold nobody. `at`: ms from the last long prompt `sent` before it."""
    lines = [x for log in sorted(logs.glob("bench_latest.log*"))
             for x in log.read_text(errors="replace").splitlines()]  # fmt: skip
    steps = [json.loads(x[len(SLOW_PREFIX) :]) for x in lines if x.startswith(SLOW_PREFIX)]
    mixed = sorted(
        (s for s in steps if s["rows"] > s["prompt_rows"]),
        key=lambda s: -s["ms"] - s.get("waited_ms", 0),
    )
    print(f"\nlocalllm's steps over 50 ms (`--profile`, {logs}): {len(steps)}, of which "
          f"{len(mixed)} beside generating streams, the slowest 20 of those:\n")  # fmt: skip
    if mixed:
        phases = list(mixed[0]["phases_ms"])
        print("| ms | waited before | at | rows | prompt rows | samplers changed | "
              + " | ".join(phases) + " |")  # fmt: skip
        print("|---|---|---|---|---|---|" + "---|" * len(phases))
    for s in mixed[:20]:
        cells = " | ".join(f"{s['phases_ms'][p]:.1f}" for p in phases)
        before = [t for t in sent if t <= s.get("at", 0)]
        at = f"{(s['at'] - before[-1]) * 1e3:+.0f}" if before else "-"
        print(f"| {s['ms']:.1f} | {s.get('waited_ms', 0):.1f} | {at} | {s['rows']} | "
              f"{s['prompt_rows']} | {s.get('replans', '-')} | {cells} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 50 MB model instead of 1B")
    parser.add_argument("--model", type=Path, help="a GGUF file to use instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--concurrent-size", type=int, default=4096)
    parser.add_argument("--stall-size", type=int, default=32768)
    parser.add_argument("--stall-tokens", type=int, default=768)
    parser.add_argument("--stall-after", type=float, default=1.0,
                        help="seconds from the streams' start to the long prompt")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=1,
                        help="tokens each prefill prompt asks for: the decode rate after "
                        "its first is reported too (how fast answers come that deep)")  # fmt: skip
    parser.add_argument("--prefill-only", action="store_true",
                        help="only the prefill table (1.)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ngl", type=int, default=0)
    parser.add_argument("--ubatch", type=int, default=512, help="llama-batched-bench's -ub")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--llama-server", type=Path)
    parser.add_argument("--batched-bench", type=Path)
    parser.add_argument("--server-flags", action="append", metavar="FLAGS",
                        help="one llama-server run with these flags (repeatable; default: "
                        f"its defaults and {FAST_FLAGS!r}; '' for its defaults)")  # fmt: skip
    parser.add_argument("--no-llama-server", action="store_true", help="localllm alone")
    parser.add_argument("--profile", action="store_true",
                        help="localllm's worker writes out each step over 50 ms (its "
                        "timers wait for the device each step); listed at the end")  # fmt: skip
    parser.add_argument("--tag", default="cpu")
    add_workdir(parser)
    args = parser.parse_args()
    args.slot_ctx = max([*args.sizes, args.stall_size, args.concurrent_size]) + 256
    path = args.model or model_file(args.workdir, args.small)
    args.model_parameters = {"num_ctx": args.slot_ctx, "num_thread": args.threads,
                             "num_gpu": args.ngl}  # fmt: skip
    home, _ = bench_home(path, args.model_parameters, "localllm-bench-home-")
    texts = Texts(path)
    outcomes = [measure(e, texts, args) for e in engines(path, args, home)]
    ceiling: dict[int, float] = {}
    command = ""
    if args.batched_bench:
        ceiling, command = prefill_ceiling(args.batched_bench, path, args)
    report(outcomes, ceiling, args, path, command)
    if args.profile:
        slow_steps(home / "logs" / "runners", [t for o in outcomes for t in o.sent])
    RESULTS.mkdir(exist_ok=True)
    saved: dict[str, Any] = {"model": path.name, "args": {k: str(v) for k, v in vars(args).items()},
                             "results": [asdict(o) for o in outcomes],
                             "llama_batched_bench_s_pp": ceiling,
                             "llama_batched_bench_command": command}  # fmt: skip
    (RESULTS / f"long-prompts-{args.tag}.json").write_text(json.dumps(saved, indent=2))


if __name__ == "__main__":
    main()
