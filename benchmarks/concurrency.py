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
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._llama_server import llama_server
from benchmarks._models import model_file
from benchmarks.server import free_port

RESULTS = Path(__file__).resolve().parent / "results"
_QUIET: Any = None
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


@dataclass
class Engine:
    name: str
    start: Callable[[int], subprocess.Popen[bytes]]
    ready_path: str
    extra: dict[str, Any]
    log: Path | None = None
    """The model worker's log (localllm), where `--profile` totals land."""


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON events of an OpenAI server-sent-event stream, up to `[DONE]`."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


def eog_tokens(path: Path) -> list[int]:
    """The model's end tokens, to ban them where a server has no `ignore_eos`."""
    import llama_cpp

    global _QUIET
    _QUIET = llama_cpp.llama_log_callback(lambda *_: None)  # kept alive: llama.cpp calls it
    llama_cpp.llama_log_set(_QUIET, ctypes.c_void_p())
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    vocab = llama_cpp.llama_model_get_vocab(model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    out = [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    llama_cpp.llama_model_free(model)
    return out


def engines(path: Path, args: argparse.Namespace, home: Path) -> list[Engine]:
    threads, ngl, slots = str(args.threads), str(args.ngl), max(args.levels)

    def popen(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def localllm_on(sampling: str, where: Path) -> Callable[[int], subprocess.Popen[bytes]]:
        def start(port: int) -> subprocess.Popen[bytes]:
            env = {**os.environ, "LOCALLLM_HOME": str(where),
                   "LOCALLLM_HOST": f"127.0.0.1:{port}", "LOCALLLM_NUM_PARALLEL": str(slots),
                   "LOCALLLM_BACKEND_SAMPLING": sampling,
                   "LOCALLLM_PROFILE": "1" if args.profile else ""}  # fmt: skip
            return popen([sys.executable, "-m", "localllm", "serve"], env)

        return start

    def server(port: int) -> subprocess.Popen[bytes]:
        binary = args.llama_server or llama_server(args.workdir)
        return popen(
            [str(binary), "-m", str(path), "--host", "127.0.0.1", "--port", str(port),
             "-c", str(SLOT_CTX * slots), "-np", str(slots), "-t", threads, "-tb", threads,
             "-ngl", ngl],
        )  # fmt: skip

    def bundled(port: int) -> subprocess.Popen[bytes]:
        return popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(path),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(SLOT_CTX),
             "--n_threads", threads, "--n_threads_batch", threads, "--n_gpu_layers", ngl],
        )  # fmt: skip

    ban = {str(t): -100 for t in eog_tokens(path)}

    def log(where: Path) -> Path:
        return where / "logs" / "runners" / "bench_latest.log"

    out = [Engine("localllm", localllm_on("auto", home), "/api/version", {"ignore_eos": True},
                  log(home))]  # fmt: skip
    if args.compare_sampling:  # a second home (the same store, linked): its own server and log
        cpu_home = home.with_name(home.name + "-cpu-sampling")
        (cpu_home / "data").mkdir(parents=True, exist_ok=True)
        if not (cpu_home / "data" / "models").exists():
            (cpu_home / "data" / "models").symlink_to(home / "data" / "models")
        out.append(Engine("localllm, CPU sampling", localllm_on("off", cpu_home), "/api/version",
                          {"ignore_eos": True}, log(cpu_home)))  # fmt: skip
    if not args.no_llama_server:
        out.append(Engine("llama-server", server, "/health", {"ignore_eos": True}))
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

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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
    all of them alike."""
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
        results = [Result(e.name) for e in engines]
        for n in args.levels:
            runs: list[list[tuple[float, list[Stream]]]] = [[] for _ in engines]
            if args.profile:  # an engine's runs in a row, between two readings of its totals
                for i, (engine, proc, url) in enumerate(running):
                    before = _profile_point(engine, proc, pool)
                    for r in range(args.repeat):
                        runs[i].append(streams(url, n, args.tokens, engine.extra, r, pool))
                    after = _profile_point(engine, proc, pool)
                    wall = sum(w for w, _ in runs[i])
                    tokens = n * args.tokens * args.repeat
                    results[i].profile[n] = _profile(before, after, wall, tokens)
            else:  # run by run in turn, so a slow spell of the machine hits every engine
                for r in range(args.repeat):
                    for i, (engine, _, url) in enumerate(running):
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


def _cpu_seconds(proc: psutil.Process, children: bool) -> float:
    try:
        procs = [proc, *(proc.children(recursive=True) if children else [])]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    except psutil.Error:
        return 0.0


def _profile_point(engine: Engine, proc: subprocess.Popen[bytes], pool: Any) -> dict[str, Any]:
    """The worker's totals and the CPU seconds of server, worker and clients so far."""
    from localllm.engine.profile import read_last

    time.sleep(1.2)  # the worker writes its totals about once a second
    server = psutil.Process(proc.pid)
    workers = server.children(recursive=True)
    clients = [psutil.Process(p) for p in (pool._processes if pool else {})]
    return {
        "totals": read_last(engine.log.read_text()) if engine.log and engine.log.exists() else None,
        "server": _cpu_seconds(server, children=False),
        "worker": sum(_cpu_seconds(w, children=False) for w in workers),
        "clients": _cpu_seconds(psutil.Process(), children=False)
        + sum(_cpu_seconds(c, children=False) for c in clients),
    }


def _profile(
    before: dict[str, Any], after: dict[str, Any], wall: float, tokens: int
) -> dict[str, float]:
    from localllm.engine.profile import breakdown

    out: dict[str, float] = {}
    if after["totals"] is not None:
        out = breakdown(before["totals"], after["totals"])
        steps = after["totals"]["steps"] - (before["totals"] or {"steps": 0})["steps"]
        out["step_ms"] = wall / max(steps, 1) * 1e3
    for who in ("worker", "server", "clients"):  # CPU seconds per 1,000 tokens
        out[f"{who}_cpu_ms_per_token"] = (after[who] - before[who]) / max(tokens, 1) * 1e3
    return out


def batched_bench(binary: Path, path: Path, levels: list[int], ngl: int) -> dict[int, float]:
    """llama.cpp's `llama-batched-bench` on the same model: S_TG (decode tokens/s of all
    streams together, no HTTP, no sampling) at each number of streams."""
    top = max(levels)
    command = [str(binary), "-m", str(path), "-ngl", str(ngl), "-c", str(max(2048, 320 * top)),
               "-b", "2048", "-ub", "512", "-npp", "128", "-ntg", "128",
               "-npl", ",".join(map(str, levels)), "-fa", "on"]  # fmt: skip
    print("  " + " ".join(command), file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    out: dict[int, float] = {}
    for line in done.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) >= 8 and cells[2].isdigit()
        ):  # | PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG |
            out[int(cells[2])] = float(cells[7])
    if not out:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return out


def record(result: Result, n: int, runs: list[tuple[float, list[Stream]]]) -> None:
    wall = statistics.median(w for w, _ in runs)
    done = [s for _, one in runs for s in one]
    ok = [s for s in done if s.error is None]
    result.errors[n] = (len(done) - len(ok)) // len(runs)
    for s in done:
        if s.error:
            print(f"  {result.engine}, {n} streams: {s.error}", file=sys.stderr)
    result.aggregate[n] = sum(s.tokens for s in ok) / len(runs) / wall
    rates = [(s.tokens - 1) / s.seconds for s in ok if s.seconds]
    result.per_stream[n] = statistics.median(rates) if rates else 0.0
    result.ttft[n] = statistics.median(s.ttft for s in ok) if ok else 0.0


def direct(path: Path, args: argparse.Namespace) -> Result:
    """llama-cpp-python's `Llama`, streaming in this process: one stream, no HTTP."""
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=SLOT_CTX, n_threads=args.threads, n_threads_batch=args.threads,
                n_gpu_layers=args.ngl, verbose=False)  # fmt: skip
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


def report(
    results: list[Result], args: argparse.Namespace, path: Path, ceiling: dict[int, float]
) -> None:
    base = next((r for r in results if r.engine == "llama-server"), None)
    levels = args.levels
    print(f"model: {path.name} ({path.stat().st_size / 2**20:.0f} MiB), {args.threads} threads, "
          f"{args.ngl} GPU layers, {args.tokens} new tokens per stream, greedy\n")  # fmt: skip
    print("Aggregate decode tokens/s (N streams at once; x: against llama-server)\n")
    print("| engine | " + " | ".join(f"{n} stream{'s' * (n > 1)}" for n in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for r in results:
        cells = []
        for n in levels:
            if n not in r.aggregate:
                cells.append("-")
                continue
            cell = f"{r.aggregate[n]:.1f}"
            if base is not None and base.aggregate.get(n):
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
        keys = ["tokens_per_step", "step_ms", "admit", "batch", "decode", "sample", "accept",
                "send", "backend_share", "drafted_per_step", "agreed_share",
                "worker_cpu_ms_per_token", "server_cpu_ms_per_token",
                "clients_cpu_ms_per_token"]  # fmt: skip
        print("| streams | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for n, p in sorted(r.profile.items()):
            print(f"| {n} | " + " | ".join(f"{p.get(k, 0):.3f}" for k in keys) + " |")
    print("\nPer stream decode tokens/s / time to first token, median over the streams\n")
    print("| engine | " + " | ".join(f"{n}" for n in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for r in results:
        cells = [
            f"{r.per_stream[n]:.1f} / {r.ttft[n]:.2f} s" if n in r.per_stream else "-"
            for n in levels
        ]
        print(f"| {r.engine} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--tag", default="cpu", help="suffix of the result files")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "localllm-bench"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.model or model_file(args.workdir, args.small)
    home = Path(tempfile.mkdtemp(prefix="localllm-bench-home-"))
    modelfile = home / "Modelfile"
    parameters: dict[str, object] = {"num_ctx": SLOT_CTX, "num_thread": args.threads,
                                     "num_gpu": args.ngl}  # fmt: skip
    parameters.update(tuple(p.split("=", 1)) for p in args.parameter)
    lines = [f"FROM {path}", *(f"PARAMETER {k} {v}" for k, v in parameters.items())]
    modelfile.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "localllm", "create", "bench", "-f", str(modelfile)],
                   env={**os.environ, "LOCALLLM_HOME": str(home)}, check=True)  # fmt: skip
    results = run_all(engines(path, args, home), args)
    if args.direct:
        results.append(direct(path, args))
    ceiling = (
        batched_bench(args.batched_bench, path, args.levels, args.ngl) if args.batched_bench else {}
    )
    report(results, args, path, ceiling)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"concurrency-{args.tag}"
    saved = {
        "model": path.name,
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
        "llama_batched_bench": ceiling,
    }
    stem.with_suffix(".json").write_text(json.dumps(saved, indent=2))
    title = f"{path.name}, {args.threads} threads, {args.ngl} GPU layers, {args.tokens} tokens"
    plot(results, args.levels, title, stem.with_suffix(".png"))


if __name__ == "__main__":
    main()
