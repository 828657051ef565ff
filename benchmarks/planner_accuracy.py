"""How close the planner's memory predictions are to what llama.cpp really uses.

    python benchmarks/planner_accuracy.py [--quick] [--workdir DIR]

Generates models with random weights (dense GQA llama shapes of several
sizes, an MoE, a sliding-window Gemma-3 shape, a recurrent Mamba), quantizes
them with llama.cpp's own quantizer, loads each for real at several contexts
and KV cache types, fills the whole context with a prompt, and prints:

- predicted host memory (the formula model, no trial load) against the sum of
  the buffers llama.cpp reports (mapped and repacked weights, KV, compute,
  output), and the error;
- the process's memory growth after the full-context prompt, and whether it
  stayed within the prediction;
- the common rule of thumb "parameters x bytes per parameter + context x
  0.0005 GB" and its error, for comparison;
- then, for each model, the plan the planner makes for this machine, loaded
  and run with a full-context prompt: did it fit.

Models are cached in --workdir between runs. Takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from localllm.engine.trial import parse_load_log
from localllm.gguf.local import read_local
from localllm.hardware import HardwareReport, detect_live
from localllm.hardware.bandwidth import measure_cpu_bandwidth
from localllm.planner.budget import budget_for
from localllm.planner.memory import estimate
from localllm.planner.plan import Candidate, plan
from localllm.planner.settings import LoadSettings
from tests.factory import LLAMA_1B, ModelSpec, quantize, write_model

MIB = 1 << 20
CHILD = Path(__file__).with_name("_fill_context.py")
RULE_BYTES_PER_PARAM = {"F16": 2.0, "Q8_0": 1.0, "Q6_K": 0.75, "Q4_K_M": 0.5, "Q4_0": 0.5}

MODELS: dict[str, ModelSpec] = {
    "dense-170M": ModelSpec(n_vocab=32000, n_embd=1024, n_layer=8, n_head=16, n_head_kv=4,
                            n_ff=2816, n_ctx_train=32768, name="dense-170M"),
    "dense-400M": ModelSpec(n_vocab=49152, n_embd=1536, n_layer=12, n_head=24, n_head_kv=8,
                            n_ff=4096, n_ctx_train=32768, name="dense-400M"),
    "moe-8x": ModelSpec(n_vocab=32000, n_embd=768, n_layer=8, n_head=12, n_head_kv=4, n_ff=1024,
                        n_expert=8, n_expert_used=2, n_ctx_train=32768, name="moe-8x"),
    "swa-gemma3": ModelSpec(arch="gemma3", n_vocab=32000, n_embd=1024, n_layer=12, n_head=8,
                            n_head_kv=4, head_dim=128, n_ff=2816, sliding_window=512,
                            tied_embeddings=True, n_ctx_train=32768, name="swa-gemma3"),
    "mamba": ModelSpec(arch="mamba", n_vocab=32000, n_embd=768, n_layer=12, n_head=0,
                       n_head_kv=0, n_ff=0, d_inner=1536, d_state=16, dt_rank=48,
                       n_ctx_train=32768, name="mamba"),
    "llama-1B": LLAMA_1B,
}  # fmt: skip

Case = tuple[str, str, int, str, bool]
"""(model, quantization, ctx, kv type, flash attention)"""
CASES: list[Case] = [
    ("dense-170M", "Q4_K_M", 2048, "f16", True),
    ("dense-170M", "Q4_K_M", 8192, "f16", True),
    ("dense-170M", "Q8_0", 8192, "q8_0", True),
    ("dense-170M", "F16", 4096, "f16", False),
    ("dense-400M", "Q4_K_M", 8192, "f16", True),
    ("dense-400M", "Q6_K", 4096, "q8_0", True),
    ("moe-8x", "Q4_K_M", 4096, "f16", True),
    ("moe-8x", "Q8_0", 8192, "f16", False),
    ("swa-gemma3", "Q8_0", 8192, "f16", True),
    ("swa-gemma3", "Q4_K_M", 4096, "q8_0", True),
    ("mamba", "Q8_0", 4096, "f16", True),
    ("llama-1B", "Q4_K_M", 4096, "f16", True),
]
QUICK = {0, 3, 6, 8, 10}


@dataclass
class Row:
    model: str
    quant: str
    ctx: int
    kv: str
    fa: bool
    predicted: int
    """llama.cpp's buffers as the formulas predict them."""
    predicted_process: int
    """Plus the CPU scratch memory llama.cpp does not report: what the process needs."""
    reported: int
    rss_growth: int
    rule: int
    seconds: float


def model_file(workdir: Path, name: str, quant: str) -> Path:
    import llama_cpp

    spec = MODELS[name]
    base = workdir / f"{name}-F16.gguf"
    if not base.exists():
        write_model(spec, base, dtype=np.float16)
    if quant == "F16":
        return base
    out = workdir / f"{name}-{quant}.gguf"
    if not out.exists():
        quantize(base, out, getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}"))
    return out


@dataclass(frozen=True)
class Filled:
    rss_growth: int
    log: str
    seconds: float


def fill(path: Path, s: LoadSettings) -> Filled:
    """Load for real in a child, decode a prompt as long as the context; RuntimeError if
    llama.cpp fails (an out-of-memory load or decode included)."""
    request = {"path": str(path), "n_ctx": s.n_ctx, "n_ubatch": s.n_ubatch,
               "flash_attn": s.flash_attn, "type_k": s.type_k, "type_v": s.type_v,
               "prompt_tokens": s.n_ctx - 8}  # fmt: skip
    done = subprocess.run([sys.executable, str(CHILD), json.dumps(request)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["?"])[-1])
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return Filled(int(answer["rss_filled"]) - int(answer["rss_base"]), str(answer["log"]),
                  float(answer["seconds"]))  # fmt: skip


def reported_total(log: str) -> int:
    m = parse_load_log(log)
    kv = sum(m.kv_buffers.values()) or m.kv_total
    rs = m.recurrent_total
    return sum(m.model.values()) + kv + rs + sum(m.compute.values()) + sum(m.output.values())


def measure_case(workdir: Path, case: Case, repack: bool) -> Row:
    name, quant, ctx, kv, fa = case
    path = model_file(workdir, name, quant)
    info = read_local(path)
    s = LoadSettings(n_gpu_layers=0, n_ctx=ctx, type_k=kv, type_v=kv, flash_attn=fa)
    host = estimate(info, s, repack=repack).host
    try:
        result = fill(path, s)
    except RuntimeError as exc:
        raise SystemExit(f"{name} {quant} ctx {ctx}: {exc}") from None
    rule = int(info.parameter_count * RULE_BYTES_PER_PARAM.get(quant, 1.0) + ctx * 0.0005e9)
    reported = reported_total(result.log)
    return Row(name, quant, ctx, kv, fa, host.buffers, host.total, reported, result.rss_growth,
               rule, result.seconds)  # fmt: skip


def accuracy(workdir: Path, cases: list[Case], repack: bool) -> None:
    print(
        "| model | quant | ctx | KV | FA | predicted buffers MiB | llama.cpp buffers MiB | "
        "error | predicted process MiB | RSS growth after full prompt MiB | within | "
        "rule of thumb MiB | rule error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    rows = []
    for case in cases:
        r = measure_case(workdir, case, repack)
        rows.append(r)
        err = (r.predicted - r.reported) / r.reported
        rule_err = (r.rule - r.reported) / r.reported
        print(f"| {r.model} | {r.quant} | {r.ctx} | {r.kv} | {'on' if r.fa else 'off'} | "
              f"{r.predicted / MIB:.0f} | {r.reported / MIB:.0f} | {err:+.1%} | "
              f"{r.predicted_process / MIB:.0f} | {r.rss_growth / MIB:.0f} | "
              f"{'yes' if r.rss_growth <= r.predicted_process else 'NO'} | "
              f"{r.rule / MIB:.0f} | {rule_err:+.0%} |", flush=True)  # fmt: skip
    worst = max(abs(r.predicted - r.reported) / r.reported for r in rows)
    within = all(r.rss_growth <= r.predicted_process for r in rows)
    verdict = "yes" if within else "NO"
    print(f"\nworst prediction error: {worst:.1%} (target 5 %); "
          f"process memory within prediction in every case: {verdict}\n")  # fmt: skip


def plans(workdir: Path, cases: list[Case], report: HardwareReport) -> None:
    budget = budget_for(report, measure_cpu_bandwidth(report.cpu.recommended_threads))
    print("Plans for this machine, loaded and run with a full-context prompt:\n")
    print("| model | pick | fit | ctx | KV | predicted MiB | RSS growth MiB | ran |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sorted({c[0] for c in cases}):
        quants = sorted({c[1] for c in CASES if c[0] == name})
        cands = [Candidate(q, read_local(model_file(workdir, name, q)), 0) for q in quants]
        p = plan(cands, budget)
        if p.choice is None:
            print(f"| {name} | - | won't fit | | | | | |")
            continue
        s = p.choice.settings
        try:
            growth, ran = fill(model_file(workdir, name, p.choice.label), s).rss_growth, "yes"
        except RuntimeError as exc:
            growth, ran = 0, f"error: {exc}"
        predicted = p.choice.estimate.host.total
        print(f"| {name} | {p.choice.label} | {p.choice.fit.value} | {s.n_ctx} | {s.type_k} | "
              f"{predicted / MIB:.0f} | {growth / MIB:.0f} | {ran} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/localllm-bench-models"))
    parser.add_argument("--quick", action="store_true", help="five cases, no 1B model")
    parser.add_argument("--only", choices=["accuracy", "plans"], help="run one of the two parts")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = detect_live()
    cases = [c for i, c in enumerate(CASES) if not args.quick or i in QUICK]
    if args.only != "plans":
        accuracy(args.workdir, cases, "repack" in report.llama.cpu_features)
    if args.only != "accuracy":
        plans(args.workdir, cases, report)


if __name__ == "__main__":
    main()
