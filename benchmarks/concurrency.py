"""Concurrent streams: localllm against llama.cpp's `llama-server` and llama-cpp-python's server.

    pip install -e '.[bench]'
    python benchmarks/concurrency.py                 # 1B-shaped Q4_K_M, 1/2/4/8 streams
    python benchmarks/concurrency.py --small         # a 50 MB model, for a quick look
    python benchmarks/concurrency.py --ngl 99 --levels 1 4 16   # on a GPU

The same model file, threads and GPU layers for all three servers, all up in
one run and taking turns (so the machine's slower minutes fall on all
alike); each gets N streaming requests at once (OpenAI
`/v1/completions`, greedy, exactly `--tokens` new tokens: end tokens are
banned) and we time what the client sees. `llama-server` is built from the
llama.cpp source inside llama-cpp-python's sdist (`_llama_server.py`).

Prints three tables and writes `benchmarks/results/concurrency[-TAG].json`
and `.png`:
1. aggregate decode tokens/s at each number of streams (and the ratio to
   llama-server);
2. time to first token under load (median over the streams);
3. a 10-turn chat: time to first token of each turn, continuing the chat
   (prefix reused) and as a fresh prompt of the same length.

On a GPU, for many streams: `--clients 8` spreads the streams over client processes
(one Python client cannot read 10,000 events a second), `--batched-bench PATH` runs
llama.cpp's `llama-batched-bench` on the same model for the ceiling without HTTP or
sampling, `--compare-sampling` adds localllm with sampling on the CPU, and
`--profile` prints where each step's time goes (the worker's own timers, and the CPU
seconds of the worker, the server and the clients).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._batched_bench import batched_bench
from benchmarks._concurrency_report import plot, report
from benchmarks._llama_server import llama_server
from benchmarks._models import add_workdir, bench_home, eog_tokens, model_file
from benchmarks._step_profile import profile_between, profile_point
from benchmarks.server import free_port

RESULTS = Path(os.environ.get("LOCALLLM_BENCH_RESULTS") or Path(__file__).parent / "results")
"""Where the result files go (`LOCALLLM_BENCH_RESULTS`: elsewhere, as the GPU round does)."""
SLOT_CTX = 4096


@dataclass
class Stream:
    ttft: float = 0.0
    seconds: float = 0.0
    tokens: int = 0
    error: str | None = None
    sent: float = 0.0
    ended: float = 0.0
    """When it was sent and when its last token came (`time.perf_counter()`)."""


@dataclass
class Result:
    engine: str
    aggregate: dict[int, float] = field(default_factory=dict)
    """Streams -> total new tokens per second of wall time."""
    per_stream: dict[int, float] = field(default_factory=dict)
    ttft: dict[int, float] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    chat_warm: list[float] = field(default_factory=list)
    chat_cold: list[float] = field(default_factory=list)
    chat_prompt: list[int] = field(default_factory=list)
    profile: dict[int, dict[str, float]] = field(default_factory=dict)
    """Streams -> where a step's time went (`--profile`, localllm only)."""
    runs: dict[int, list[float]] = field(default_factory=dict)
    """Streams -> the aggregate tokens/s of each run (`aggregate` is their median)."""
    command: str = ""
    """How the engine was started: its command line (and environment, for localllm)."""


@dataclass
class Engine:
    name: str
    start: Callable[[int], subprocess.Popen[bytes]]
    ready_path: str
    extra: dict[str, Any]
    log: Path | None = None
    """The model worker's log (localllm), where `--profile` totals land."""
    command: str = ""
    """Its command line, as the results file shows it (`{port}` for the port)."""


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON events of an OpenAI server-sent-event stream, up to `[DONE]`."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


FAST_FLAGS = ["-fa on --backend-sampling"]
"""llama-server's fastest flags for many streams, by default: flash attention on (its
`auto` turns it on for a GPU already) and sampling in the graph (experimental, off by
default; localllm samples with the same llama.cpp feature). `--fast-flags` tries
others (`-kvu`, `-ub 2048 -b 2048`...); each set is one more llama-server."""


def engines(path: Path, args: argparse.Namespace, home: Path) -> list[Engine]:
    threads, ngl, slots = str(args.threads), str(args.ngl), max(args.levels)

    def popen(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def localllm_env(sampling: str, where: Path, port: int) -> dict[str, str]:
        return {"LOCALLLM_HOME": str(where), "LOCALLLM_HOST": f"127.0.0.1:{port}",
                "LOCALLLM_NUM_PARALLEL": str(slots), "LOCALLLM_BACKEND_SAMPLING": sampling,
                "LOCALLLM_PROFILE": "1" if args.profile else "",
                "LOCALLLM_NO_REPACK": "1" if args.no_repack else ""}  # fmt: skip

    def localllm_on(sampling: str, where: Path) -> Callable[[int], subprocess.Popen[bytes]]:
        def start(port: int) -> subprocess.Popen[bytes]:
            env = {**os.environ, **localllm_env(sampling, where, port)}
            return popen([sys.executable, "-m", "localllm", "serve"], env)

        return start

    def localllm_command(sampling: str, where: Path) -> str:
        env = localllm_env(sampling, where, 0)
        hidden = ("LOCALLLM_HOME", "LOCALLLM_HOST")
        shown = " ".join(f"{k}={v}" for k, v in env.items() if v and k not in hidden)
        parameters = " ".join(f"{k}={v}" for k, v in args.model_parameters.items())
        return f"{shown} localllm serve (model parameters: {parameters})"

    def server_argv(flags: str, port: int) -> list[str]:
        binary = args.llama_server or llama_server(args.workdir)
        repack = ["--no-repack"] if args.no_repack else []
        return [str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(args.slot_ctx * slots), "-np", str(slots), "-t", threads,
                "-tb", threads, "-ngl", ngl, *repack, *flags.split()]  # fmt: skip

    def server(flags: str) -> Callable[[int], subprocess.Popen[bytes]]:
        return lambda port: popen(server_argv(flags, port))

    def bundled(port: int) -> subprocess.Popen[bytes]:
        return popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(path),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(args.slot_ctx),
             "--n_threads", threads, "--n_threads_batch", threads, "--n_gpu_layers", ngl],
        )  # fmt: skip

    ban = {str(t): -100 for t in eog_tokens(path)}

    def log(where: Path) -> Path:
        return where / "logs" / "runners" / "bench_latest.log"

    out = [Engine("localllm", localllm_on("auto", home), "/api/version", {"ignore_eos": True},
                  log(home), localllm_command("auto", home))]  # fmt: skip
    if args.compare_sampling:  # a second home (the same store, linked): its own server and log
        cpu_home = home.with_name(home.name + "-cpu-sampling")
        (cpu_home / "data").mkdir(parents=True, exist_ok=True)
        if not (cpu_home / "data" / "models").exists():
            (cpu_home / "data" / "models").symlink_to(home / "data" / "models")
        out.append(Engine("localllm, CPU sampling", localllm_on("off", cpu_home), "/api/version",
                          {"ignore_eos": True}, log(cpu_home),
                          localllm_command("off", cpu_home)))  # fmt: skip
    if not args.no_llama_server:
        for flags in ["", *(args.fast_flags or FAST_FLAGS)]:
            name = f"llama-server {flags}" if flags else "llama-server"
            shown = " ".join(server_argv(flags, 0)).replace("--port 0", "--port {port}")
            out.append(Engine(name, server(flags), "/health", {"ignore_eos": True},
                              command=shown))  # fmt: skip
    if not args.no_bundled:
        out.append(Engine("llama_cpp.server", bundled, "/v1/models", {"logit_bias": ban}))
    return out


def completion(
    url: str, prompt: str, tokens: int, extra: dict[str, Any], client: httpx.Client | None = None
) -> Stream:
    """One streamed completion. `client`: made beforehand, as an app keeps its own (its
    TLS context costs tens of milliseconds), so the clock measures only the server."""
    body = {"model": "bench", "prompt": prompt, "max_tokens": tokens, "temperature": 0,
            "stream": True, **extra}  # fmt: skip
    out = Stream()
    client = client or httpx.Client(timeout=900)
    start = time.perf_counter()
    first = None
    finish = None
    try:
        with client, client.stream("POST", f"{url}/v1/completions", json=body) as r:
            if r.status_code != 200:
                out.error = f"{r.status_code}: {r.read().decode()[:200]}"
                return out
            for chunk in sse(r):
                choice = (chunk.get("choices") or [{}])[0]
                if choice.get("text") and first is None:
                    first = time.perf_counter()
                finish = choice.get("finish_reason") or finish
    except httpx.HTTPError as exc:
        out.error = str(exc)
        return out
    end = time.perf_counter()
    if finish != "length":
        out.error = f"ended with {finish!r}, not after exactly {tokens} tokens"
    out.ttft = (first or end) - start
    out.seconds = end - (first or end)
    out.tokens = tokens
    out.sent, out.ended = start, end
    return out


def in_threads(one: Callable[[int], None], n: int) -> None:
    """`one(0)` to `one(n - 1)` at once, a thread each, until all have returned."""
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _threads(
    url: str, prompts: list[str], tokens: int, extra: dict[str, Any], at: float = 0.0
) -> list[Stream]:
    """These streams at once, one thread each (in this process), their clients made
    first and all sent from `at` (a `time.perf_counter()` reading: CLOCK_MONOTONIC on
    Linux, the same clock in every process of the machine)."""
    results: list[Stream] = [Stream()] * len(prompts)
    clients = [httpx.Client(timeout=900) for _ in prompts]
    time.sleep(max(0.0, at - time.perf_counter()))

    def one(i: int) -> None:
        results[i] = completion(url, prompts[i], tokens, extra, clients[i])

    in_threads(one, len(prompts))
    return results


def streams(
    url: str, n: int, tokens: int, extra: dict[str, Any], run: int, pool: Any = None
) -> tuple[float, list[Stream]]:
    """N requests at once, each a prompt no server has seen (nothing to reuse); returns
    (wall seconds from the first send to the last token, each stream). With `pool`
    (client processes), the streams are spread over its processes. The clients are
    made before the clock starts (an app keeps its own)."""
    prompts = [f"{run}.{n}.{i} Once upon a time" for i in range(n)]
    if pool is None or n == 1:
        results = _threads(url, prompts, tokens, extra)
    else:
        k = pool._max_workers
        parts = [prompts[i::k] for i in range(k) if prompts[i::k]]
        at = time.perf_counter() + 0.1 + 0.03 * len(parts[0])  # every process's clients made
        futures = [pool.submit(_threads, url, part, tokens, extra, at) for part in parts]
        results = [s for f in futures for s in f.result()]
    sent = [s.sent for s in results if s.error is None]
    if not sent:
        return 0.0, results
    return max(s.ended for s in results if s.error is None) - min(sent), results


def chat(url: str, turns: int) -> tuple[list[int], list[float], list[float]]:
    """(prompt tokens, TTFT continuing the chat, TTFT of the same prompt started cold)."""
    system = {"role": "system", "content": "You answer briefly. " * 4}
    messages: list[dict[str, str]] = [system]
    prompts: list[list[dict[str, str]]] = []
    warm: list[float] = []
    sizes: list[int] = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Question {turn}: and why is that so?"})
        prompts.append(list(messages))
        ttft, text, size = chat_turn(url, messages)
        warm.append(ttft)
        sizes.append(size)
        messages.append({"role": "assistant", "content": text})
    cold = []
    for i, prompt in enumerate(prompts):  # a new first token: nothing to reuse
        nonce = {"role": "system", "content": f"{i}{i} " + system["content"]}
        cold.append(chat_turn(url, [nonce, *prompt[1:]])[0])
    return sizes, warm, cold


def chat_turn(url: str, messages: list[dict[str, str]]) -> tuple[float, str, int]:
    body = {"model": "bench", "messages": messages, "max_tokens": 8, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    client = httpx.Client(timeout=900)  # before the clock, as in `completion`
    start = time.perf_counter()
    first, text, size = None, [], 0
    with client, client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise SystemExit(f"chat turn failed: {r.status_code} {r.read().decode()[:300]}")
        for chunk in sse(r):
            if chunk.get("usage"):
                size = chunk["usage"].get("prompt_tokens", 0)
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    first = first or time.perf_counter()
                    text.append(piece)
    return (first or time.perf_counter()) - start, "".join(text), size


def start(engine: Engine) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server and wait until it answers and has its model loaded."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = engine.start(port)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + engine.ready_path, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{engine.name} exited with {proc.returncode}")
        time.sleep(0.2)
    completion(url, "warm up", 8, engine.extra)
    return proc, url


def run_all(engines: list[Engine], args: argparse.Namespace) -> list[Result]:
    """Every server up at once (idle ones cost nothing), taking turns run by run (level
    by level with `--profile`), so a slower or faster minute of this machine falls on
    all of them alike; every other run in the reverse order."""
    running: list[tuple[Engine, subprocess.Popen[bytes], str]] = []
    pool = None
    if args.clients > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(args.clients, mp_context=multiprocessing.get_context("spawn"))
        list(pool.map(time.sleep, [0.0] * args.clients))  # started before anything is timed
    try:
        for engine in engines:
            running.append((engine, *start(engine)))
        results = [Result(e.name, command=e.command) for e in engines]
        for n in args.levels:
            runs: list[list[tuple[float, list[Stream]]]] = [[] for _ in engines]
            if args.profile:  # an engine's runs in a row, between two readings of its totals
                for i, (engine, proc, url) in enumerate(running):
                    before = profile_point(engine, proc, pool)
                    for r in range(args.repeat):
                        runs[i].append(streams(url, n, args.tokens, engine.extra, r, pool))
                    after = profile_point(engine, proc, pool)
                    wall = sum(w for w, _ in runs[i])
                    tokens = n * args.tokens * args.repeat
                    results[i].profile[n] = profile_between(before, after, wall, tokens)
            else:  # run by run in turn, so a slow spell of the machine hits every engine,
                # the order reversed every other run, so none always follows the same one
                for r in range(args.repeat):
                    order = list(enumerate(running))
                    for i, (engine, _, url) in order if r % 2 == 0 else order[::-1]:
                        runs[i].append(streams(url, n, args.tokens, engine.extra, r, pool))
            for (engine, _, _), result, mine in zip(running, results, runs, strict=True):
                record(result, n, mine)
                print(f"  {engine.name}: {n} streams, {result.aggregate[n]:.1f} tok/s",
                      file=sys.stderr)  # fmt: skip
        if args.chat_turns:
            for (_, _, url), result in zip(running, results, strict=True):
                sizes, warm, cold = chat(url, args.chat_turns)
                result.chat_prompt, result.chat_warm, result.chat_cold = sizes, warm, cold
        return results
    finally:
        if pool is not None:
            pool.shutdown()
        stop([proc for _, proc, _ in running])


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the servers: politely, then for good."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def decode_ceiling(
    binary: Path, path: Path, levels: list[int], ngl: int, no_repack: bool = False
) -> tuple[dict[int, float], str]:
    """`llama-batched-bench`'s S_TG (decode tokens/s of all streams together) at each
    number of streams, and its command line."""
    flags = ["-ngl", str(ngl), "-c", str(max(2048, 320 * max(levels))), "-b", "2048",
             "-ub", "512", "-npp", "128", "-ntg", "128", "-npl", ",".join(map(str, levels)),
             "-fa", "on", *(["--no-repack"] if no_repack else [])]  # fmt: skip
    rows, command = batched_bench(binary, path, flags)
    return {int(r["B"]): r["S_TG"] for r in rows}, command


def record(result: Result, n: int, runs: list[tuple[float, list[Stream]]]) -> None:
    done = [s for _, one in runs for s in one]
    ok = [s for s in done if s.error is None]
    result.errors[n] = (len(done) - len(ok)) // len(runs)
    for s in done:
        if s.error:
            print(f"  {result.engine}, {n} streams: {s.error}", file=sys.stderr)
    result.runs[n] = [
        sum(s.tokens for s in one if s.error is None) / wall if wall else 0.0 for wall, one in runs
    ]
    result.aggregate[n] = statistics.median(result.runs[n])
    rates = [(s.tokens - 1) / s.seconds for s in ok if s.seconds]
    result.per_stream[n] = statistics.median(rates) if rates else 0.0
    result.ttft[n] = statistics.median(s.ttft for s in ok) if ok else 0.0


def direct(path: Path, args: argparse.Namespace) -> Result:
    """llama-cpp-python's `Llama`, streaming in this process: one stream, no HTTP."""
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=args.slot_ctx, n_threads=args.threads,
                n_threads_batch=args.threads, n_gpu_layers=args.ngl, verbose=False)  # fmt: skip
    ban = {t: -100.0 for t in eog_tokens(path)}
    runs = []
    for i in range(args.repeat + 1):  # the first warms up
        start = time.perf_counter()
        first = None
        stream = llm.create_completion(f"{i}.1.0 Once upon a time",
                                       max_tokens=args.tokens, temperature=0.0, stream=True,
                                       logit_bias=ban)  # fmt: skip
        chunks: Iterator[Any] = stream  # type: ignore[assignment]
        for chunk in chunks:
            if first is None and chunk["choices"][0]["text"]:
                first = time.perf_counter()
        end = time.perf_counter()
        out = Stream(ttft=(first or end) - start, seconds=end - (first or end), tokens=args.tokens)
        runs.append((end - start, [out]))
    result = Result("llama-cpp-python in process")
    record(result, 1, runs[1:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 50 MB model instead of 1B")
    parser.add_argument("--model", type=Path, help="a GGUF file to use instead")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=3, help="runs per level (median)")
    parser.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False) or 1)
    parser.add_argument("--ngl", type=int, default=0, help="GPU layers (0: CPU only)")
    parser.add_argument("--chat-turns", type=int, default=10)
    parser.add_argument("--no-llama-server", action="store_true")
    parser.add_argument("--no-bundled", action="store_true")
    parser.add_argument("--llama-server", type=Path, help="a built llama-server to use")
    parser.add_argument(
        "--direct", action="store_true", help="also llama-cpp-python's Llama in process (1 stream)"
    )
    parser.add_argument("--clients", type=int, default=1,
                        help="client processes to spread the streams over")  # fmt: skip
    parser.add_argument("--batched-bench", type=Path, help="a built llama-batched-bench")
    parser.add_argument("--compare-sampling", action="store_true",
                        help="also localllm with sampling on the CPU")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="where each step's time goes")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a PARAMETER of localllm's model: prompt_lookup=false")  # fmt: skip
    parser.add_argument("--slot-ctx", type=int, default=SLOT_CTX,
                        help="context per slot, the same for every server")  # fmt: skip
    parser.add_argument("--fast-flags", action="append", metavar="FLAGS",
                        help="llama-server flags for one more llama-server run (repeatable; "
                        f"default: {FAST_FLAGS[0]!r})")  # fmt: skip
    parser.add_argument("--no-repack", action="store_true", help="every engine without "
                        "llama.cpp's weight repacking (where its AMX kernels crash)")  # fmt: skip
    parser.add_argument("--tag", default="cpu", help="suffix of the result files")
    add_workdir(parser)
    args = parser.parse_args()
    path = args.model or model_file(args.workdir, args.small)
    parameters: dict[str, object] = {"num_ctx": args.slot_ctx, "num_thread": args.threads,
                                     "num_gpu": args.ngl}  # fmt: skip
    parameters.update(tuple(p.split("=", 1)) for p in args.parameter)
    args.model_parameters = parameters
    home, _ = bench_home(path, parameters, "localllm-bench-home-")
    results = run_all(engines(path, args, home), args)
    if args.direct:
        results.append(direct(path, args))
    ceiling: dict[int, float] = {}
    args.batched_bench_command = ""
    if args.batched_bench:
        ceiling, args.batched_bench_command = decode_ceiling(
            args.batched_bench, path, args.levels, args.ngl, args.no_repack
        )
    report(results, args, path, ceiling)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"concurrency-{args.tag}"
    saved = {
        "model": path.name,
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
        "llama_batched_bench": ceiling,
        "llama_batched_bench_command": args.batched_bench_command,
    }
    stem.with_suffix(".json").write_text(json.dumps(saved, indent=2))
    title = f"{path.name}, {args.threads} threads, {args.ngl} GPU layers, {args.tokens} tokens"
    plot(results, args.levels, title, stem.with_suffix(".png"))


if __name__ == "__main__":
    main()
