"""One long prompt into the engine, in one process: where prefill time goes on a GPU.

    python benchmarks/gpu/prefill.py --model MODEL.gguf [--sizes 4096 16384 32768]

`benchmarks/long_prompts.py` times a prompt from the client's request to its first
token, and compares with `llama-batched-bench`'s S_PP: its bare loop of
`llama_decode` calls, `n_batch` tokens each, synchronised once at the end. This
script takes the server's context (its slots and their cells) and adds one thing at
a time, each row the median of `--repeat` runs on fresh random tokens:

1. the bare loop, synchronised once at the end (batched-bench);
2. the bare loop, synchronised after every batch (what a step loop that reads
   anything back does); and synchronised once again, with the chain the engine gives
   such a request attached to its sequence;
3. the engine (`engine.batch.Engine`): the prompt's tokens submitted as a request
   of one greedy token, timed to its `Done`;
4. the engine with its step profile (`engine.profile`, which synchronises every
   step): milliseconds by phase over the whole prompt.

Each row for every `--ubatch` given (llama.cpp's micro-batch). Beside the bare loop
with one sync and the engine, the seconds the host spent inside `llama_decode` calls
(timed around each call, nothing synchronised): where llama.cpp blocks the caller
(waiting for the device before it sets the next micro-batch's inputs) or builds those
inputs (the attention mask over every cached cell) on the host. Prints a Markdown
table and writes it to `--out`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import llama_cpp  # before numpy: numpy first made CUDA loads crash on the GPU machine

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.profile import PHASES, StepProfile
from localllm.engine.prompt import Prepared
from localllm.engine.protocol import Done, Failed, Generate, Sampling
from localllm.engine.sampling import build_sampler
from localllm.engine.tokenbatch import TokenBatch
from localllm.planner.settings import LoadSettings

IN_DECODE = [0.0]
"""Seconds inside `TokenBatch.decode` (llama_decode) since the last reset."""
_decode = TokenBatch.decode


def _timed_decode(self: TokenBatch, ctx: object, n: int) -> int:
    start = time.perf_counter()
    try:
        return _decode(self, ctx, n)
    finally:
        IN_DECODE[0] += time.perf_counter() - start


def random_tokens(model: LlamaModel, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(100, model.n_vocab - 100) for _ in range(n)]


def bare(model: LlamaModel, tokens: list[int], sync_each: bool) -> float:
    """Seconds to decode `tokens` on sequence 0 in batches of `n_batch`, the last
    token's logits read."""
    ctx, step = model.ctx, model.settings.n_batch
    llama_cpp.llama_memory_clear(model.memory, True)
    batch = TokenBatch(step)
    start = time.perf_counter()
    for lo in range(0, len(tokens), step):
        part = tokens[lo : lo + step]
        for i, token in enumerate(part):
            batch.put(i, token, lo + i, 0, lo + i == len(tokens) - 1)
        if batch.decode(ctx, len(part)) != 0:
            raise SystemExit("decode failed")
        if sync_each:
            llama_cpp.llama_synchronize(ctx)
    llama_cpp.llama_get_logits_ith(ctx, -1)  # waits for the device
    seconds = time.perf_counter() - start
    batch.close()
    return seconds


ONE = Sampling(temperature=0, repeat_penalty=1.0, num_predict=1, ignore_eos=True)
"""The request: one greedy token, end tokens banned (as the benchmarks' requests)."""


def bare_with_chain(model: LlamaModel, tokens: list[int]) -> float:
    """The bare loop, one sync, with the chain the engine gives the request attached to
    sequence 0 (the other rows run with none, as the engine starts; end tokens banned
    by a logit bias): whether a graph sampler alone changes how llama.cpp runs the
    prompt's batches (in this script's first run on the H100 the bare loop ran mostly
    with none attached, the engine closing detached them all, and the engine with its
    request's: they were 20 to 26 % apart at 32k)."""
    chain = build_sampler(model.vocab, model.n_vocab, ONE, None, model.eog)
    model.use_sampler(0, chain)
    try:
        return bare(model, tokens, False)
    finally:
        model.use_sampler(0, None)
        llama_cpp.llama_sampler_free(chain)


def engine_run(model: LlamaModel, tokens: list[int], profile: StepProfile | None) -> float:
    """Seconds from submitting `tokens` to the engine to its request's `Done`."""
    llama_cpp.llama_memory_clear(model.memory, True)
    engine = Engine(model, profile)
    request = Generate(1, prompt="-", sampling=ONE)
    start = time.perf_counter()
    engine.submit(Prepared(request, list(tokens)))
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Failed):
                raise SystemExit(f"the request failed: {event}")
            if isinstance(event, Done):
                seconds = time.perf_counter() - start
    engine.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--slots", type=int, default=33, help="the server's slots")
    parser.add_argument("--slot-ctx", type=int, default=33024)
    parser.add_argument("--ubatch", type=int, nargs="+", default=[512])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # every llama_decode timed, the bare loop's and the engine's, from here on
    TokenBatch.decode = _timed_decode  # type: ignore[method-assign]
    lines = [
        f"model: {args.model.name}, every layer on the GPU, flash attention, "
        f"{args.slots} slots of {args.slot_ctx} cells, batch 2048; tokens/s, median of "
        f"{args.repeat} runs (profiled: one run, ms by phase)",
        "",
        "| micro-batch | tokens | bare, one sync | bare, sync each batch | "
        "bare, one sync, the engine's chain | engine | "
        "s in llama_decode: bare, one sync / engine | "
        "engine profiled: steps, " + ", ".join(PHASES) + " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ub in args.ubatch:
        settings = LoadSettings(
            n_gpu_layers=999, n_ctx=args.slot_ctx * args.slots, n_batch=2048, n_ubatch=ub,
            n_seq_max=args.slots, flash_attn=True, n_threads=args.threads,
            backend_sampling=True,
        )  # fmt: skip
        model = LlamaModel((str(args.model),), settings, (), keep_log=200)
        try:
            for seq in range(args.slots):  # as the engine starts: no chain attached
                model.use_sampler(seq, None)
            bare(model, random_tokens(model, 2048, 0), False)  # warm-up
            for size in args.sizes:
                runs: dict[str, list[float]] = {"one": [], "each": [], "chain": [], "engine": []}
                inside: dict[str, list[float]] = {"one": [], "engine": []}
                for r in range(args.repeat):
                    tokens = random_tokens(model, size, size * 100 + r)
                    IN_DECODE[0] = 0.0
                    runs["one"].append(size / bare(model, tokens, False))
                    inside["one"].append(IN_DECODE[0])
                    runs["each"].append(size / bare(model, tokens, True))
                    runs["chain"].append(size / bare_with_chain(model, tokens))
                    IN_DECODE[0] = 0.0
                    runs["engine"].append(size / engine_run(model, tokens, None))
                    inside["engine"].append(IN_DECODE[0])
                profile = StepProfile()
                engine_run(model, random_tokens(model, size, 7), profile)
                phases = ", ".join(f"{profile.ns[p] / 1e6:.1f}" for p in PHASES)
                cells = " | ".join(f"{statistics.median(runs[k]):,.0f}" for k in runs)
                held = " / ".join(f"{statistics.median(inside[k]):.3f}" for k in inside)
                lines.append(f"| {ub} | {size:,} | {cells} | {held} | {profile.steps}, {phases} |")
                print(lines[-1], file=sys.stderr)
        finally:
            model.close()
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
