"""The prompt cache: a long prefix's follow-up, cold, warm and after a restart.

    python benchmarks/prompt_cache.py            # the 50 MB model, a 4k-token prefix

A chat whose system prompt is `--prefix` tokens, then a short question: the time to
the first token of the question (1) cold: the server has never seen the prefix, (2)
warm: the same server, the prefix in its slot, (3) restored: the server stopped
(its worker writes the prefix's state to disk), a new one started, the prefix loaded
from the cache (`engine.prompt_cache`). Writes `benchmarks/results/prompt-cache-TAG.md`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._models import add_workdir, bench_home, model_file
from benchmarks.concurrency import Engine, sse, start, stop
from benchmarks.long_prompts import Texts

RESULTS = Path(os.environ.get("LOCALLLM_BENCH_RESULTS") or Path(__file__).parent / "results")


def ask(url: str, system: str, question: str) -> tuple[float, int]:
    """(seconds to the first token, prompt tokens reused) of one chat turn."""
    body = {"model": "bench", "max_tokens": 4, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question}]}  # fmt: skip
    with httpx.Client(timeout=900) as client:
        started = time.perf_counter()
        first, reused = None, 0
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            for chunk in sse(r):
                delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
                if first is None and delta.get("content"):
                    first = time.perf_counter()
                if chunk.get("usage"):
                    reused = chunk["usage"]["prompt_tokens_details"]["cached_tokens"]
    return (first or time.perf_counter()) - started, reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tag", default="cpu")
    add_workdir(parser)
    args = parser.parse_args()
    path = model_file(args.workdir, small=True)
    parameters = {"num_ctx": args.prefix + 512, "num_thread": args.threads}
    _, env = bench_home(path, parameters, "localllm-cache-home-")

    def serve(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "localllm", "serve"],
                                env={**env, "LOCALLLM_HOST": f"127.0.0.1:{port}"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    texts = Texts(path)
    engine = Engine("localllm", serve, "/api/version", {})
    rows: dict[str, list[tuple[float, int]]] = {"cold": [], "warm": [], "restored": []}
    for run in range(args.repeat):
        system = texts.make(args.prefix, f"prefix{run}")
        proc, url = start(engine)
        rows["cold"].append(ask(url, system, "first question?"))
        rows["warm"].append(ask(url, system, "second question?"))
        stop([proc])  # SIGTERM: the worker saves its slots' prefixes as it goes
        time.sleep(1.0)
        proc, url = start(engine)
        rows["restored"].append(ask(url, system, "third question?"))
        stop([proc])
    lines = [
        f"# Prompt cache: a {args.prefix:,}-token prefix's follow-up",
        "",
        f"`python benchmarks/prompt_cache.py --prefix {args.prefix} --repeat {args.repeat} "
        f"--threads {args.threads}`: model {path.name}, {args.threads} threads, median of "
        f"{args.repeat} (their range); a new prefix each run.",
        "",
        "| the prefix is | time to first token | prompt tokens reused |",
        "|---|---|---|",
    ]
    for name, what in (("cold", "new to the server"), ("warm", "in its slot (same server)"),
                       ("restored", "on disk (a new server)")):  # fmt: skip
        times = [t for t, _ in rows[name]]
        reused = statistics.median(r for _, r in rows[name])
        lines.append(f"| {what} | {statistics.median(times):.3f} s ({min(times):.3f}-"
                     f"{max(times):.3f}) | {reused:,.0f} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"prompt-cache-{args.tag}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
