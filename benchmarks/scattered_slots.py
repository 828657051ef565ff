"""Streams in scattered slots against streams side by side, in one process.

    python benchmarks/scattered_slots.py --model MODEL.gguf [--streams 4] [--ngl 0]

With a cache per sequence (llama.cpp's default for several slots), `llama_decode`
splits a step into micro-batches of consecutive sequence ids, one pass of the
weights each. The slots' history here (older conversations in every other slot) makes
"least recently used" put N streams, each joining the ones running, in slots 0, 2,
4...; the engine's rule (`engine.slots.choose`) puts them side by side. Prints a
Markdown table: tokens/s of the whole run for each, the median of `--repeat`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp

from localllm.engine import slots as slot_rules
from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Sampling
from localllm.planner.settings import LoadSettings


def run(
    model: LlamaModel, streams: int, tokens: int, side_by_side: bool
) -> tuple[float, list[int]]:
    """(tokens/s, the slots taken) for `streams` greedy requests, each admitted a step
    after the one before."""
    rule = slot_rules.choose
    if not side_by_side:  # least recently used alone, as before the rule
        slot_rules.choose = lambda free, tokens, running=(): rule(free, tokens)
    try:
        engine = Engine(model)
        for slot in engine.slots:  # the even slots the oldest: where LRU goes first
            slot.last_used = slot.seq if slot.seq % 2 == 0 else 1000 + slot.seq
        greedy = Sampling(temperature=0, num_predict=tokens, repeat_penalty=1.0, ignore_eos=True)
        start = time.perf_counter()
        for i in range(streams):
            engine.submit(Generate(i + 1, prompt=f"{i} Once upon a time there", sampling=greedy))
            engine.step()
        taken = sorted(s.seq for s in engine.slots if s.job is not None)
        while engine.busy:
            engine.step()
        wall = time.perf_counter() - start
        engine.close()
    finally:
        slot_rules.choose = rule
    llama_cpp.llama_memory_clear(model.memory, True)
    return streams * tokens / wall, taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--ngl", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n_seq = 2 * args.streams
    settings = LoadSettings(n_gpu_layers=args.ngl, n_ctx=n_seq * 512, n_seq_max=n_seq,
                            n_threads=args.threads, flash_attn=args.ngl > 0)  # fmt: skip
    model = LlamaModel([str(args.model)], settings, (), keep_log=50)
    lines = [
        f"model: {args.model.name}, {args.ngl} GPU layers, {args.threads} threads, "
        f"{n_seq} slots, {args.streams} streams of {args.tokens} tokens, median of {args.repeat}",
        "",
        "| slots | taken | tokens/s |",
        "|---|---|---|",
    ]
    for name, side_by_side in (("least recently used", False), ("side by side", True)):
        runs = [run(model, args.streams, args.tokens, side_by_side) for _ in range(args.repeat)]
        rate = statistics.median(r for r, _ in runs)
        lines.append(f"| {name} | {runs[0][1]} | {rate:.1f} |")
    model.close()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
