"""One model in one process against the same model split over 2 and 3 RPC workers.

    python benchmarks/rpc.py            # writes benchmarks/results/rpc-cpu.md

The workers are `localllm worker` processes on loopback ports of this machine (CPU
devices, one thread each), the model's blocks split evenly across them and the token
embeddings kept in the process that decodes; the engine runs in this process (no
HTTP). For each setup: decode tokens/s of one greedy stream (median of `--repeat`),
and the bytes that crossed the loopback interface per token (both directions: the
kernel's interface counters), which is what a real network would carry.
The answers must be the same tokens in every setup (checked). On loopback the hops
cost the copies and a context switch each way; over a network each token also waits
a round trip per worker.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._models import add_workdir, model_file
from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings
from localllm.remote.workers import answers

RESULTS = Path(__file__).resolve().parent / "results" / "rpc-cpu.md"
PROMPT = "Once upon a time, in a small village by the sea, there lived"


def start_workers(n: int, threads: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    out = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            endpoint = f"127.0.0.1:{s.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "localllm", "worker", "--listen", endpoint, "--no-cache",
             "--threads", str(threads)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while not answers(endpoint):
            time.sleep(0.05)
        out.append((endpoint, process))
    return out


def loopback_bytes() -> int:
    """Bytes sent over the loopback interface so far (the workers' traffic both ways,
    and anything else on loopback: run it on a quiet machine)."""
    counters = psutil.net_io_counters(pernic=True)
    return int(counters["lo"].bytes_sent) if "lo" in counters else 0


def decode(engine: Engine, tokens: int) -> tuple[str, float]:
    """One greedy answer from an empty cache: its text and decode tokens/s."""
    import llama_cpp

    for slot in engine.slots:
        slot.cached.clear()
        llama_cpp.llama_memory_seq_rm(engine.model.memory, slot.seq, -1, -1)
    sampling = Sampling(temperature=0, num_predict=tokens, repeat_penalty=1.0,
                        ignore_eos=True, prompt_lookup=False)  # fmt: skip
    engine.submit(Generate(1, prompt=PROMPT, sampling=sampling))
    text, first, n = "", 0.0, 0
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                first = first or time.perf_counter()
                text += event.text
                n += 1
    return text, (tokens - 1) / (time.perf_counter() - first)


def measure(path: Path, n_workers: int, args: argparse.Namespace) -> dict[str, float | str]:
    workers = start_workers(n_workers, args.worker_threads)
    try:
        endpoints = tuple(e for e, _ in workers)
        settings = LoadSettings(
            n_gpu_layers=999 if workers else 0, n_ctx=1024, n_threads=args.threads,
            workers=endpoints, tensor_split=(1.0,) * len(workers),
        )  # fmt: skip
        model = LlamaModel([str(path)], settings, ())
        engine = Engine(model)
        try:
            decode(engine, 8)  # warm up
            rates, texts, per_token = [], [], []
            for _ in range(args.repeat):
                before = loopback_bytes()
                text, rate = decode(engine, args.tokens)
                per_token.append((loopback_bytes() - before) / args.tokens)
                rates.append(rate)
                texts.append(text)
        finally:
            engine.close()
            model.close()
    finally:
        for _, process in workers:
            process.kill()
            process.wait()
    return {
        "tok_s": statistics.median(rates),
        "bytes_per_token": statistics.median(per_token),
        "text": texts[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the 50 MB F16 one)")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=psutil.cpu_count(logical=False) or 1)
    parser.add_argument("--worker-threads", type=int, default=1)
    add_workdir(parser)
    args = parser.parse_args()
    path = args.model or model_file(args.workdir, small=True)
    rows = {n: measure(path, n, args) for n in (0, 2, 3)}
    same = len({r["text"] for r in rows.values()}) == 1
    lines = [
        f"{path.name}, 1 greedy stream, {args.tokens} tokens, median of {args.repeat}; "
        f"{args.threads} threads here, {args.worker_threads} per worker "
        f"(`python benchmarks/rpc.py`)",
        "",
        "| setup | decode tok/s | x one process | bytes over loopback per token |",
        "|---|---|---|---|",
    ]
    base = float(rows[0]["tok_s"])
    for n, row in rows.items():
        label = "one process" if n == 0 else f"{n} loopback workers + this process"
        lines.append(f"| {label} | {float(row['tok_s']):.1f} | {float(row['tok_s']) / base:.2f}x "
                     f"| {float(row['bytes_per_token']):,.0f} |")  # fmt: skip
    lines += ["", f"Answers identical in every setup: {'yes' if same else 'NO'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
