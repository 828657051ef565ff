"""Fair queues: one client's lone request beside another client's flood.

    python benchmarks/fairness.py            # the 50 MB model, 4 slots, 64 + 1 requests

Two API keys, `flood` and `lone`. `flood` sends 64 streaming completions at once;
a moment later `lone` sends one. Every slot is busy, so `lone` waits: in arrival
order (`LOCALLLM_FAIR_QUEUES=0`) behind all of `flood`'s, or in turn
(the default: `workers.turns`) behind at most one of them per free slot. Prints
the lone request's time to first token and the flood's wall time, each way, and
writes `benchmarks/results/fairness-TAG.md`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._models import add_workdir, bench_home, model_file
from benchmarks.concurrency import Engine, completion, start, stop

RESULTS = Path(os.environ.get("LOCALLLM_BENCH_RESULTS") or Path(__file__).parent / "results")


def one_run(
    url: str, keys: dict[str, str], args: argparse.Namespace, run: int
) -> tuple[float, float]:
    """(the lone request's time to first token, the flood's wall time)."""
    import httpx

    def client(key: str) -> httpx.Client:
        return httpx.Client(timeout=900, headers={"Authorization": f"Bearer {keys[key]}"})

    flood = [client("flood") for _ in range(args.flood)]
    results: list[float] = []

    def send(i: int) -> None:
        s = completion(url, f"{run}.{i} Once upon a time", args.tokens, {"ignore_eos": True},
                       flood[i])  # fmt: skip
        results.append(s.ended)

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(args.flood)]
    for t in threads:
        t.start()
    time.sleep(args.after)
    lone = completion(url, f"{run} lone", args.tokens, {"ignore_eos": True}, client("lone"))
    for t in threads:
        t.join()
    return lone.ttft, max(results) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=64)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--after", type=float, default=0.5, help="seconds before `lone` sends")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tag", default="cpu")
    add_workdir(parser)
    args = parser.parse_args()
    path = model_file(args.workdir, small=True)
    _, env = bench_home(path, {"num_ctx": 512}, "localllm-fair-home-")
    keys = {}
    for name in ("flood", "lone"):
        made = subprocess.run([sys.executable, "-m", "localllm", "keys", "add", name],
                              env=env, check=True, capture_output=True, text=True)  # fmt: skip
        keys[name] = made.stdout.splitlines()[0]
    rows = []
    for fair in ("1", "0"):

        def serve(port: int, fair: str = fair) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "localllm", "serve"],
                env={**env, "LOCALLLM_HOST": f"127.0.0.1:{port}", "LOCALLLM_FAIR_QUEUES": fair,
                     "LOCALLLM_NUM_PARALLEL": str(args.slots)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

        proc, url = start(Engine("localllm", serve, "/api/version", {"ignore_eos": True}))
        try:
            runs = [one_run(url, keys, args, r) for r in range(args.repeat)]
        finally:
            stop([proc])
        lone = [r[0] for r in runs]
        walls = [r[1] for r in runs]
        name = "in turn by client (default)" if fair == "1" else "arrival order"
        rows.append(f"| {name} | {statistics.median(lone):.2f} s ({min(lone):.2f}-{max(lone):.2f}) "
                    f"| {statistics.median(walls):.2f} s |")  # fmt: skip
    text = "\n".join([
        f"# Fair queues: {args.flood} requests of one key, then 1 of another",
        "",
        f"`python benchmarks/fairness.py --flood {args.flood} --slots {args.slots} --tokens "
        f"{args.tokens} --repeat {args.repeat}`: model {path.name}, {args.slots} slots, "
        f"{args.tokens} tokens each, the lone request {args.after} s after the flood, median "
        f"of {args.repeat} runs (their range).",
        "",
        "| waiting requests served | lone request's time to first token | flood's wall time |",
        "|---|---|---|",
        *rows,
    ])  # fmt: skip
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"fairness-{args.tag}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
