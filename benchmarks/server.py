"""Server speed against llama-cpp-python called directly, on the same file and threads.

    python benchmarks/server.py            # 1B-shaped Q4_K_M (generated once, ~0.8 GB)
    python benchmarks/server.py --small    # a 20 MB model, for a quick look

Prints three tables:
1. decode tokens/s: llama-cpp-python's `Llama` streaming vs localllm's server,
   streamed over HTTP (NDJSON, the Ollama API), greedy, the same number of tokens;
2. time to first token of each turn of a 10-turn chat: with prefix reuse it
   follows the new tokens of the turn, not the length of the conversation;
3. `localllm serve` start: seconds to the first answer of /api/version, and
   the server's idle memory (RSS) before any model is loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._models import add_workdir, model_file

TOKENS = 128
THREADS = psutil.cpu_count(logical=False) or 1


def direct_decode(path: Path) -> float:
    """llama-cpp-python's own streaming path; decode tokens/s after the first token."""
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=2048, n_threads=THREADS, n_gpu_layers=0, verbose=False)
    stream = llm.create_completion("Once", max_tokens=TOKENS, temperature=0.0, stream=True)
    first, n = None, 0
    for _ in stream:
        n += 1
        if first is None:
            first = time.perf_counter()
    assert first is not None
    return (n - 1) / (time.perf_counter() - first)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int) -> tuple[subprocess.Popen[bytes], float, int]:
    env = {**os.environ, "LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "localllm", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=0.2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.02)
    ready = time.perf_counter() - start
    time.sleep(0.5)
    return proc, ready, psutil.Process(proc.pid).memory_info().rss


def server_decode(url: str) -> tuple[float, float]:
    """(tokens/s seen by the client after the first token, the server's own eval rate)."""
    body = {"model": "bench", "prompt": "Once", "raw": True,
            "options": {"num_predict": TOKENS, "temperature": 0}}  # fmt: skip
    first, n, final = None, 0, {}
    with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=600) as r:
        for line in r.iter_lines():
            chunk = json.loads(line)
            if chunk.get("done"):
                final = chunk
                break
            n += 1
            if first is None:
                first = time.perf_counter()
    assert first is not None
    client = (n - 1) / (time.perf_counter() - first)
    return client, final["eval_count"] / final["eval_duration"] * 1e9


def chat_turns(url: str) -> list[tuple[int, int, float]]:
    """(prompt tokens, tokens evaluated, seconds to first token) for 10 turns."""
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are terse. " * 20}]
    rows = []
    for turn in range(10):
        messages.append({"role": "user", "content": f"Question {turn}: " + "why? " * 15})
        body = {"model": "bench", "messages": messages,
                "options": {"num_predict": 16, "temperature": 0}}  # fmt: skip
        start, ttft, text, final = time.perf_counter(), None, [], {}
        with httpx.stream("POST", f"{url}/api/chat", json=body, timeout=600) as r:
            for line in r.iter_lines():
                chunk = json.loads(line)
                if ttft is None:
                    ttft = time.perf_counter() - start
                if "error" in chunk:
                    raise SystemExit(f"turn {turn + 1}: {chunk['error']}")
                if chunk.get("done"):
                    final = chunk
                    break
                text.append(chunk["message"]["content"])
        messages.append({"role": "assistant", "content": "".join(text)})
        rows.append((final["prompt_eval_count"], final["prompt_eval_count"], ttft or 0.0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 20 MB model instead of 1B")
    add_workdir(parser)
    args = parser.parse_args()
    path = model_file(args.workdir, args.small)
    home = Path(tempfile.mkdtemp(prefix="localllm-bench-home-"))
    env = {**os.environ, "LOCALLLM_HOME": str(home)}
    modelfile = home / "Modelfile"
    modelfile.write_text(f"FROM {path}\nPARAMETER num_ctx 8192\nPARAMETER num_thread {THREADS}\n")
    subprocess.run([sys.executable, "-m", "localllm", "create", "bench", "-f", str(modelfile)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    port = free_port()
    proc, ready_s, idle_rss = start_server(home, port)
    url = f"http://127.0.0.1:{port}"
    try:
        server_decode(url)  # load and warm up
        direct = [direct_decode(path) for _ in range(3)]
        served = [server_decode(url) for _ in range(3)]
        turns = chat_turns(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    d = float(np.median(direct))
    c = float(np.median([s[0] for s in served]))
    e = float(np.median([s[1] for s in served]))
    print(f"model: {path.name} ({path.stat().st_size / 2**20:.0f} MiB), {THREADS} threads, "
          f"{TOKENS} tokens, greedy, median of 3\n")  # fmt: skip
    print("| path | decode tok/s | vs direct |\n|---|---|---|")
    print(f"| llama-cpp-python `Llama` streaming, in process | {d:.1f} | 1.00 |")
    print(f"| localllm server, HTTP NDJSON, client-side | {c:.1f} | {c / d:.2f} |")
    print(f"| localllm server, worker's own eval rate | {e:.1f} | {e / d:.2f} |\n")
    print("| turn | prompt tokens | time to first token (s) |\n|---|---|---|")
    for i, (n, _, ttft) in enumerate(turns, 1):
        print(f"| {i} | {n} | {ttft:.3f} |")
    print(f"\n`localllm serve` answered after {ready_s:.2f} s; idle RSS {idle_rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
