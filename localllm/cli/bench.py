"""`localllm bench MODEL`: prompt and decode speed through the server, against the ceiling.

Like llama-bench's pp512/tg128, but measured where users meet the model:
through the server's streaming API (`/api/generate`, raw prompt, greedy, end
tokens banned so every run decodes exactly `-n` tokens). Prompt and decode
rates are the worker's own timings; time to first token is the client's.
Each repetition starts its prompt with a different word, so nothing is
reused from the previous one.

The decode ceiling is memory bandwidth over the bytes one token reads (every
weight used, an MoE's active experts only, and the KV cache so far): RAM
bandwidth measured here and now, a GPU's published figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from localllm.errors import LocalLLMError

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven",
         "wise", "owls", "watch")  # fmt: skip


@dataclass(frozen=True)
class Run:
    prompt_tokens: int
    prompt_tps: float
    decode_tokens: int
    decode_tps: float
    ttft_s: float
    drafted: int = 0
    accepted: int = 0
    passes: int = 0
    """Speculative decoding: guessed tokens, those taken, and the model's passes."""


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure prompt and decode speed of a model (starts the server if needed)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-p", "--prompt-tokens", type=int, default=512, help="default 512")
    p.add_argument("-n", "--gen-tokens", type=int, default=128, help="default 128")
    p.add_argument("-r", "--repetitions", type=int, default=3, help="default 3")
    p.add_argument("-t", "--threads", type=int, help="CPU threads (default: the planner's)")
    p.add_argument("--gpu-layers", type=int, help="layers on the GPU (default: the planner's)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from localllm.cli.server import client
    from localllm.store.names import parse_name

    if min(args.prompt_tokens, args.gen_tokens, args.repetitions) < 1:
        raise LocalLLMError("-p, -n and -r must be at least 1")
    options: dict[str, Any] = {"temperature": 0, "ignore_eos": True}
    if args.threads:
        options["num_thread"] = args.threads
    if args.gpu_layers is not None:
        options["num_gpu"] = args.gpu_layers
    with client() as c:
        words = _calibrate(c, args.model, args.prompt_tokens, options)
        runs = [
            _one(c, args.model, f"{i} " + _text(words), args.gen_tokens, options)
            for i in range(args.repetitions)
        ]
        name = str(parse_name(args.model))
        loaded: dict[str, Any] = next((m for m in c.ps() if m["name"] == name), {})
    ceiling = _ceiling(args.model, loaded, args.prompt_tokens + args.gen_tokens // 2)
    result = _summary(args, runs, loaded, ceiling)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


def _text(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def _calibrate(c: Any, model: str, tokens: int, options: dict[str, Any]) -> int:
    """Words that make about `tokens` prompt tokens (this also loads the model)."""
    sample = 64
    first = _one(c, model, "x " + _text(sample), 1, options)
    per_word = max(first.prompt_tokens - 2, 1) / sample
    return max(1, round((tokens - 2) / per_word))


def _one(c: Any, model: str, prompt: str, n: int, options: dict[str, Any]) -> Run:
    start = time.perf_counter()
    first = None
    final: dict[str, Any] = {}
    body = {"raw": True, "options": {**options, "num_predict": n}, "keep_alive": "5m"}
    for chunk in c.generate(model, prompt, **body):
        if first is None and chunk.get("response"):
            first = time.perf_counter()
        if chunk.get("done"):
            final = chunk
    end = time.perf_counter()
    pn, pd = final.get("prompt_eval_count", 0), final.get("prompt_eval_duration", 0)
    en, ed = final.get("eval_count", 0), final.get("eval_duration", 0)
    spec = final.get("speculation") or {}
    return Run(pn, pn / pd * 1e9 if pd else 0.0, en, en / ed * 1e9 if ed else 0.0,
               (first or end) - start, int(spec.get("drafted", 0)),
               int(spec.get("accepted", 0)), int(spec.get("passes", 0)))  # fmt: skip


def _ceiling(model: str, loaded: dict[str, Any], kv_tokens: int) -> dict[str, float] | None:
    """Tokens/s that memory bandwidth allows at `kv_tokens` of context, and its parts."""
    from localllm.hardware.bandwidth import measure_cpu_bandwidth
    from localllm.paths import resolve_paths
    from localllm.planner.machine import this_machine
    from localllm.planner.memory import kv_bytes
    from localllm.planner.plan import bytes_per_token
    from localllm.planner.settings import LoadSettings
    from localllm.store.names import parse_name
    from localllm.store.store import Store

    if not loaded:
        return None
    store = Store(resolve_paths().models_dir)
    info, _ = store.read_model(store.get(parse_name(model)))
    layers = int(loaded.get("gpu_layers", 0))
    threads = int(loaded.get("threads", 0)) or 1
    settings = LoadSettings(n_gpu_layers=layers, n_ctx=kv_tokens)
    cpu_bytes, gpu_bytes = bytes_per_token(info, layers, kv_bytes(info, settings), 1.0)
    cpu_gbs = measure_cpu_bandwidth(threads)
    seconds = cpu_bytes / (cpu_gbs * 1e9)
    gpu_gbs = 0.0
    if gpu_bytes:
        gpus = this_machine(quick=True).budget.gpus
        gpu_gbs = min((g.bandwidth_gbs for g in gpus), default=0.0)
        seconds += gpu_bytes / (gpu_gbs * 1e9) if gpu_gbs else 0.0
    return {"tokens_per_s": 1 / seconds if seconds else 0.0, "ram_gbs": cpu_gbs,
            "gpu_gbs": gpu_gbs, "ram_bytes_per_token": cpu_bytes,
            "vram_bytes_per_token": gpu_bytes}  # fmt: skip


def _stats(values: list[float]) -> Stats:
    return Stats(statistics.median(values), min(values), max(values))


def _summary(
    args: argparse.Namespace, runs: list[Run], loaded: dict[str, Any], ceiling: Any
) -> dict[str, Any]:
    decode = _stats([r.decode_tps for r in runs])
    drafted, passes = sum(r.drafted for r in runs), sum(r.passes for r in runs)
    return {
        "model": args.model,
        "gpu_layers": loaded.get("gpu_layers"),
        "threads": loaded.get("threads"),
        "context": loaded.get("context_length"),
        "prompt_tokens": runs[0].prompt_tokens,
        "gen_tokens": runs[0].decode_tokens,
        "repetitions": len(runs),
        "prompt_tokens_per_s": asdict(_stats([r.prompt_tps for r in runs])),
        "decode_tokens_per_s": asdict(decode),
        "time_to_first_token_s": asdict(_stats([r.ttft_s for r in runs])),
        "ceiling": ceiling,
        "of_ceiling": decode.median / ceiling["tokens_per_s"] if ceiling else None,
        "drafted": drafted,
        "acceptance": sum(r.accepted for r in runs) / drafted if drafted else None,
        "tokens_per_pass": sum(r.decode_tokens for r in runs) / passes if passes else None,
    }


def _print(r: dict[str, Any]) -> None:
    print(f"{r['model']}: {r['gpu_layers']} GPU layers, {r['threads']} threads, "
          f"{r['repetitions']} runs (median, min-max)\n")  # fmt: skip
    print(f"{'test':<16}{'tokens':>8}{'median':>12}{'min':>10}{'max':>10}")
    rows = (
        (f"pp{r['prompt_tokens']}", r["prompt_tokens"], r["prompt_tokens_per_s"], "tok/s"),
        (f"tg{r['gen_tokens']}", r["gen_tokens"], r["decode_tokens_per_s"], "tok/s"),
        ("first token", r["prompt_tokens"], r["time_to_first_token_s"], "s"),
    )
    for name, n, s, unit in rows:
        print(f"{name:<16}{n:>8}{s['median']:>12.2f}{s['min']:>10.2f}{s['max']:>10.2f}  {unit}")
    if r["drafted"]:
        print(f"\nspeculation: {100 * r['acceptance']:.0f} % of {r['drafted']} guessed tokens "
              f"taken, {r['tokens_per_pass']:.2f} tokens per pass of the model")  # fmt: skip
    c = r["ceiling"]
    if c:
        where = f"RAM {c['ram_gbs']:.1f} GB/s measured"
        if c["vram_bytes_per_token"]:
            where += f", GPU {c['gpu_gbs']:.0f} GB/s published"
        mib = (c["ram_bytes_per_token"] + c["vram_bytes_per_token"]) / 2**20
        print(f"\ndecode ceiling: {c['tokens_per_s']:.1f} tok/s ({mib:.0f} MiB read per token; "
              f"{where}); reached {100 * r['of_ceiling']:.0f} %")  # fmt: skip
