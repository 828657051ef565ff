"""The planner against a real NVIDIA GPU: predicted VRAM, llama.cpp's buffers, NVML's use.

    python benchmarks/gpu/vram.py --workdir /tmp/gpu [--models 1B 8B MoE] [--budgets 8 12 24]

Run on a machine with an NVIDIA GPU and a CUDA build of llama.cpp
(`benchmarks/gpu/setup.sh` makes one). The models are header-true files of
realistic shapes whose weights are all zero (`write_header_only`): memory
and speed do not depend on the values, and they cost no download.

1. Full offload at 4k to 32k of context: the planner's GPU estimate against
   llama.cpp's reported CUDA buffers and NVML's measured growth of the
   loading process (which includes the CUDA context).
2. Pretend budgets (the GPU filled so only 8, 12 or 24 GiB are free): the
   layers the planner puts on the GPU for that budget, whether that load
   succeeds, and the most layers that load at all (found by trying).

Writes JSON (`--out`) with every number, which `tests/planner/test_gpu_recorded.py`
pins the planner to.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from localllm.gguf.local import read_local
from localllm.planner.budget import GIB, budget_for
from localllm.planner.memory import GpuTarget, estimate
from localllm.planner.plan import Candidate, plan
from localllm.planner.settings import LoadSettings
from tests.factory import LLAMA_1B, LLAMA_8B, MIXTRAL_8X7B, write_header_only

SPECS = {"1B": LLAMA_1B, "8B": LLAMA_8B, "MoE": MIXTRAL_8X7B}
CONTEXTS = (4096, 8192, 16384, 32768)
CHILD = Path(__file__).with_name("_load.py")
MIB = 1 << 20


def load(path: Path, settings: LoadSettings) -> dict[str, Any]:
    """One real load in a child process (its CUDA context dies with it)."""
    done = subprocess.run(
        [sys.executable, str(CHILD), str(path), json.dumps(asdict(settings))],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        return {"loaded": False, "error": f"exit {done.returncode}: {done.stderr[-400:]}"}


def fits(path: Path, settings: LoadSettings, keep: list[dict[str, Any]] | None = None) -> bool:
    result = load(path, settings)
    if keep is not None:
        keep.append(result)
    return bool(result.get("loaded") and result.get("decoded"))


def gpu_facts() -> tuple[int, int]:
    import pynvml

    pynvml.nvmlInit()
    info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
    return int(info.total), int(info.free)


def full_offload(name: str, path: Path, contexts: tuple[int, ...]) -> list[dict[str, Any]]:
    info = read_local(path)
    rows = []
    for ctx in contexts:
        if ctx > info.context_length:
            continue
        settings = LoadSettings(n_gpu_layers=info.n_layer + 1, n_ctx=ctx, n_threads=8)
        e = estimate(info, settings, [GpuTarget(0, "cuda")], repack=True)
        [gpu] = e.gpus
        measured = load(path, settings)
        rows.append({"model": name, "n_ctx": ctx, "predicted": asdict(gpu),
                     "predicted_total_mib": gpu.total / MIB, "measured": measured})  # fmt: skip
        print(f"{name} ctx {ctx}: predicted {gpu.total / MIB:.0f} MiB, "
              f"NVML {measured.get('nvml_delta_mib', 0):.0f} MiB", file=sys.stderr)  # fmt: skip
    return rows


def pretend(name: str, path: Path, budgets_gib: list[int], ctx: int) -> list[dict[str, Any]]:
    """Fill the GPU so only `budget` is free, plan for that budget, and try the loads."""
    import torch

    from localllm.hardware import detect_live

    report = detect_live()
    info = read_local(path)
    candidate = Candidate("Q4_K_M", info, path.stat().st_size)
    rows = []
    for gib in budgets_gib:
        budget = budget_for(report, cpu_bandwidth_gbs=50.0, vram=gib * GIB)
        chosen = plan([candidate], budget, n_ctx=ctx).choice
        planned = chosen.settings.n_gpu_layers if chosen else 0
        torch.zeros(1, device="cuda")  # this process's own CUDA context first
        _, free = gpu_facts()
        filler = torch.empty(max(free - gib * GIB, 0), dtype=torch.uint8, device="cuda")
        try:
            base = LoadSettings(n_gpu_layers=0, n_ctx=ctx, n_threads=8)
            if chosen is not None:
                base = replace(chosen.settings, n_gpu_layers=0)
            loads: list[dict[str, Any]] = []
            planned_ok = fits(path, replace(base, n_gpu_layers=planned), loads)
            lo, hi = 0, info.n_layer + 1  # the most layers that load: binary search
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(path, replace(base, n_gpu_layers=mid), loads):
                    lo = mid
                else:
                    hi = mid - 1
        finally:
            del filler
            torch.cuda.empty_cache()
        rows.append({"model": name, "budget_gib": gib, "n_ctx": ctx, "planned_layers": planned,
                     "planned_loads": planned_ok, "most_layers": lo,
                     "kv_type": base.type_k, "loads": loads})  # fmt: skip
        print(f"{name} at {gib} GiB: planned {planned} ({'ok' if planned_ok else 'FAILED'}), "
              f"most that load {lo}", file=sys.stderr)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gpu-models"))
    parser.add_argument("--models", nargs="+", default=list(SPECS))
    parser.add_argument("--contexts", type=int, nargs="*", default=list(CONTEXTS))
    parser.add_argument("--budgets", type=int, nargs="*", default=[6, 8, 12, 24])
    parser.add_argument("--budget-ctx", type=int, default=8192)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    total, free = gpu_facts()
    result: dict[str, Any] = {"gpu_total_mib": total / MIB, "gpu_free_mib": free / MIB,
                              "full_offload": [], "budgets": []}  # fmt: skip
    for name in args.models:
        path = args.workdir / f"{SPECS[name].name}-Q4_K_M.gguf"
        if not path.exists():
            write_header_only(SPECS[name], path, "Q4_K_M")
        result["full_offload"] += full_offload(name, path, tuple(args.contexts))
        if args.budgets:
            result["budgets"] += pretend(name, path, args.budgets, args.budget_ctx)
        args.out.write_text(json.dumps(result, indent=1))  # each model saved as it ends


if __name__ == "__main__":
    main()
