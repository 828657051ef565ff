"""Speculative decoding with a draft model: localllm against llama-server (`-md`).

    python benchmarks/draft.py                         # writes benchmarks/results/draft-cpu.md
    python benchmarks/draft.py --ngl 99 --tag h200      # on a GPU

Generated F16 pairs (`tests.factory.write_model(per_tensor=True)`: models of other
depths share the tensors they have in common), so how far the draft agrees with
its target is known and set, not luck:

- `sibling`: a 16-layer target whose layers add little to what the embeddings and
  the output layer (shared by both) say, and its one-layer sibling as draft: it
  agrees on most tokens, as a family's small model does.
- `itself`: the target as its own draft: every guess is taken, so what is left is
  the cost of drafting.
- `stranger`: a one-layer draft of other weights: its guesses fail, and the
  adaptive drafter should stop guessing (the cost of a draft that does not help).

Each server runs the target with and without the draft, all up at once and taking
turns, N streaming `/v1/completions` at once (greedy, exactly `--tokens` new
tokens); aggregate decode tokens/s as the client sees them, the share of guesses
taken (localllm: `/api/ps`; llama-server: its `timings.draft_n_accepted`; it runs
with its own defaults for the draft, `--spec-type draft-simple`), and the
milliseconds per token. localllm's greedy answers with the draft must be the ones
without it (checked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._llama_server import llama_server
from benchmarks._models import add_workdir
from benchmarks._step_profile import KEYS, profile_between, profile_point
from benchmarks.concurrency import Engine, start, stop, streams
from tests.factory import ModelSpec, write_model

RESULTS = Path(os.environ.get("LOCALLLM_BENCH_RESULTS") or Path(__file__).parent / "results")
"""Where the result files go (`LOCALLLM_BENCH_RESULTS`: elsewhere, as the GPU round does)."""
SLOT_CTX = 2048
TARGET = ModelSpec(name="target", n_embd=1024, n_layer=16, n_head=16, n_head_kv=4,
                   n_ff=2816, n_vocab=2048, n_ctx_train=8192)  # fmt: skip
SIBLING = {"output.weight": 50, "token_embd.weight": 50}
"""With layers that add little to the shared embeddings (`--residual`) the one-layer
sibling agrees with the target on most tokens; the output's scale makes both sure of
their picks."""
PROMPT = "Once upon a time"


@dataclass
class Row:
    pair: str
    engine: str
    streams: int
    plain: float
    drafted: float
    accepted: float | None
    profile: dict[str, float] | None = None
    """Where a step's time went with the draft (`--profile`, localllm only)."""


def pair_files(
    workdir: Path, target: ModelSpec, residual: float = 0.1
) -> dict[str, tuple[Path, Path]]:
    """{pair: (target, draft)}, written once into `workdir`; `residual`: how much the
    layers add to the shared embeddings (less: the sibling agrees more)."""
    # the layers' first: `output.weight` also ends `attn_output.weight`
    scales = {"attn_output.weight": residual, "ffn_down.weight": residual, **SIBLING}
    files = {
        "target": (target, 3, scales),
        "sibling": (replace_layers(target, 1), 3, scales),
        "stranger": (replace_layers(target, 1), 4, scales),
    }
    paths = {}
    shape = f"{target.n_layer}x{target.n_embd}-r{residual:g}"
    for name, (spec, seed, scales) in files.items():
        path = workdir / f"draft-{shape}-{name}-F16.gguf"
        if not path.exists():
            partial = path.with_suffix(".partial")
            write_model(spec, partial, np.float16, seed, 0, scales, True)
            partial.rename(path)
        paths[name] = path
    big = paths["target"]
    return {"sibling": (big, paths["sibling"]), "itself": (big, big),
            "stranger": (big, paths["stranger"])}  # fmt: skip


def replace_layers(spec: ModelSpec, n_layer: int) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, n_layer=n_layer, name=f"{spec.name}-{n_layer}")


def localllm_home(target: Path, draft: Path, args: argparse.Namespace) -> Path:
    """A store with `fast` (the target with its draft) and `plain` (without any guessing)."""
    home = Path(tempfile.mkdtemp(prefix="localllm-draft-home-"))
    common = [f"PARAMETER num_ctx {SLOT_CTX}", f"PARAMETER num_thread {args.threads}",
              f"PARAMETER num_gpu {args.ngl}"]  # fmt: skip
    fast = [f"PARAMETER draft_max {args.draft_max}"] if args.draft_max is not None else []
    models = {"fast": [f"FROM {target}", f"DRAFT {draft}", *fast, *common],
              "plain": [f"FROM {target}", "PARAMETER draft_max 0", *common]}  # fmt: skip
    env = {**os.environ, "LOCALLLM_HOME": str(home)}
    for name, lines in models.items():
        modelfile = home / f"{name}.Modelfile"
        modelfile.write_text("\n".join(lines) + "\n")
        subprocess.run([sys.executable, "-m", "localllm", "create", name, "-f", str(modelfile)],
                       env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return home


def engines(target: Path, draft: Path, args: argparse.Namespace) -> list[Engine]:
    slots, threads, ngl = max(args.levels), str(args.threads), str(args.ngl)
    home = localllm_home(target, draft, args)

    def popen(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def localllm(port: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "LOCALLLM_HOME": str(home), "LOCALLLM_HOST": f"127.0.0.1:{port}",
               "LOCALLLM_NUM_PARALLEL": str(slots), "LOCALLLM_MAX_LOADED_MODELS": "2",
               "LOCALLLM_PROFILE": "1" if args.profile else ""}  # fmt: skip
        return popen([sys.executable, "-m", "localllm", "serve"], env)

    def server(with_draft: bool) -> Callable[[int], subprocess.Popen[bytes]]:
        def run(port: int) -> subprocess.Popen[bytes]:
            binary = args.llama_server or llama_server(args.workdir)
            # `--spec-type draft-simple`: this llama-server speculates only when told how
            extra = ["-md", str(draft), "--spec-type", "draft-simple", "-ngld", ngl]
            extra = extra if with_draft else []
            return popen(
                [str(binary), "-m", str(target), "--host", "127.0.0.1", "--port", str(port),
                 "-c", str(SLOT_CTX * slots), "-np", str(slots), "-t", threads, "-tb", threads,
                 "-ngl", ngl, *extra],
            )  # fmt: skip

        return run

    fast_log = home / "logs" / "runners" / "fast_latest.log"  # the drafting worker's
    out = [Engine("localllm", localllm, "/api/version", {"ignore_eos": True}, fast_log)]
    if not args.no_llama_server:
        out += [Engine("llama-server -md", server(True), "/health", {"ignore_eos": True}),
                Engine("llama-server", server(False), "/health", {"ignore_eos": True})]  # fmt: skip
    return out


def rate(url: str, n: int, args: argparse.Namespace, extra: dict[str, Any]) -> float:
    """Median aggregate decode tokens/s of `n` streams at once over `--repeat` runs."""
    rates = []
    for r in range(args.repeat):
        wall, results = streams(url, n, args.tokens, extra, r)
        failed = [s.error for s in results if s.error]
        if failed:
            raise SystemExit(f"{url}: {failed[0]}")
        decode = wall - statistics.median(s.ttft for s in results)
        rates.append(n * args.tokens / decode)
    return float(statistics.median(rates))


def localllm_acceptance(url: str) -> tuple[int, int]:
    for m in httpx.get(f"{url}/api/ps").json()["models"]:
        if m["name"].startswith("fast"):
            spec = m["speculation"]
            return spec["drafted"], spec["accepted"]
    return 0, 0


def server_acceptance(url: str, args: argparse.Namespace) -> float | None:
    body = {"prompt": PROMPT, "n_predict": args.tokens, "temperature": 0, "ignore_eos": True}
    timings = httpx.post(f"{url}/completion", json=body, timeout=600).json().get("timings", {})
    drafted = timings.get("draft_n") or 0
    return float(timings.get("draft_n_accepted", 0)) / drafted if drafted else None


def same_answers(url: str, tokens: int) -> bool:
    def text(model: str) -> str:
        body = {"model": model, "prompt": PROMPT, "stream": False,
                "options": {"temperature": 0, "num_predict": tokens}}  # fmt: skip
        return str(httpx.post(f"{url}/api/generate", json=body, timeout=600).json()["response"])

    return text("fast") == text("plain")


def measure(
    pair: str, target: Path, draft: Path, args: argparse.Namespace
) -> tuple[list[Row], bool]:
    running: list[tuple[Engine, subprocess.Popen[bytes], str]] = []
    rows: list[Row] = []
    try:
        for engine in engines(target, draft, args):
            running.append((engine, *start(engine)))
        _, _, local = running[0]
        streams(local, 1, 8, {"ignore_eos": True, "model": "plain"}, 0)  # both loaded
        identical = same_answers(local, args.tokens)
        for n in args.levels:
            before = localllm_acceptance(local)
            totals = profile_point(running[0][0], running[0][1], None) if args.profile else {}
            began = time.perf_counter()
            fast = rate(local, n, args, {"ignore_eos": True, "model": "fast"})
            wall = time.perf_counter() - began
            profile = None
            if args.profile:  # the steps of the runs with the draft (and their warm-up)
                now = profile_point(running[0][0], running[0][1], None)
                profile = profile_between(totals, now, wall, n * args.tokens * args.repeat)
            after = localllm_acceptance(local)
            plain = rate(local, n, args, {"ignore_eos": True, "model": "plain"})
            drafted = after[0] - before[0]
            share = (after[1] - before[1]) / drafted if drafted else None
            rows.append(Row(pair, "localllm", n, plain, fast, share, profile))
            if len(running) == 3:
                with_md = rate(running[1][2], n, args, {"ignore_eos": True})
                without = rate(running[2][2], n, args, {"ignore_eos": True})
                share = server_acceptance(running[1][2], args) if n == args.levels[0] else None
                rows.append(Row(pair, "llama-server", n, without, with_md, share))
            for row in rows[-2:]:
                print(f"  {pair}, {row.engine}, {n} streams: {row.plain:.1f} -> "
                      f"{row.drafted:.1f} tok/s", file=sys.stderr)  # fmt: skip
        return rows, identical
    finally:
        stop([proc for _, proc, _ in running])


def table(rows: list[Row], args: argparse.Namespace, identical: dict[str, bool]) -> str:
    lines = [
        f"{args.target.n_layer}-layer generated target (F16, {args.target.n_embd} wide, "
        f"residual {args.residual:g}), one-layer drafts, {args.threads} threads, {args.ngl} GPU "
        f"layers, greedy, {args.tokens} tokens, median of {args.repeat} "
        f"(`python benchmarks/draft.py {' '.join(sys.argv[1:])}`)",
        "",
        "| draft | server | streams | tok/s without | tok/s with draft | speed-up | "
        "guesses taken | ms per token with draft |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        taken = f"{r.accepted:.0%}" if r.accepted is not None else "-"
        lines.append(
            f"| {r.pair} | {r.engine} | {r.streams} | {r.plain:.1f} | {r.drafted:.1f} | "
            f"{r.drafted / r.plain:.2f}x | {taken} | {1000 * r.streams / r.drafted:.1f} |"
        )
    profiled = [r for r in rows if r.profile]
    if profiled:
        lines += ["", "Where a step's time went with the draft, localllm (ms per step; CPU ms "
                  "per token; `--profile`)", "",
                  "| draft | streams | " + " | ".join(KEYS) + " |",
                  "|---|---|" + "---|" * len(KEYS)]  # fmt: skip
        for r in profiled:
            assert r.profile is not None
            cells = " | ".join(f"{r.profile.get(k, 0):.3f}" for k in KEYS)
            lines.append(f"| {r.pair} | {r.streams} | {cells} |")
    same = all(identical.values())
    lines += ["", f"localllm's greedy answers identical with and without the draft: "
              f"{'yes' if same else 'NO'} (checked for every pair)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ngl", type=int, default=0)
    parser.add_argument("--pairs", nargs="+", default=["sibling", "itself", "stranger"])
    parser.add_argument("--layers", type=int, default=TARGET.n_layer, help="the target's depth")
    parser.add_argument("--width", type=int, default=TARGET.n_embd, help="the target's width")
    parser.add_argument("--residual", type=float, default=0.1,
                        help="the layers' weight beside the shared embeddings (less: the "
                        "sibling agrees more)")  # fmt: skip
    parser.add_argument("--draft-max", type=int,
                        help="localllm's most guesses per pass (default: its own, 16)")  # fmt: skip
    parser.add_argument("--no-llama-server", action="store_true")
    parser.add_argument("--llama-server", type=Path, help="a built llama-server to use")
    parser.add_argument("--profile", action="store_true",
                        help="where localllm's steps with the draft spend their time")  # fmt: skip
    add_workdir(parser)
    parser.add_argument("--tag", default="cpu", help="suffix of the result file")
    args = parser.parse_args()
    from dataclasses import replace

    args.target = replace(TARGET, n_layer=args.layers, n_embd=args.width,
                          n_ff=args.width * TARGET.n_ff // TARGET.n_embd)  # fmt: skip
    pairs = pair_files(args.workdir, args.target, args.residual)
    rows: list[Row] = []
    identical: dict[str, bool] = {}
    for pair in args.pairs:
        target, draft = pairs[pair]
        found, identical[pair] = measure(pair, target, draft, args)
        rows += found
    text = table(rows, args, identical)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"draft-{args.tag}.md").write_text(text)


if __name__ == "__main__":
    main()
