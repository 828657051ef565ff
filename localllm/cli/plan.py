"""`localllm plan`: which quantization to run and how, before anything is downloaded."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localllm.units import format_bytes

if TYPE_CHECKING:
    from localllm.gguf.info import ModelInfo
    from localllm.hardware import HardwareReport
    from localllm.planner.budget import Budget
    from localllm.planner.plan import Plan
    from localllm.planner.projector import ProjectorShape

HELP = "pick the quantization, GPU layers and context for a model on this machine"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help=HELP,
        description=(
            "Read the model's GGUF headers (remote ones with HTTP range requests, nothing is "
            "downloaded), predict the memory and speed of every quantization on this machine "
            "and pick one, with the reasons. MODEL: a .gguf file or folder, "
            "hf.co/OWNER/REPO[:QUANT], a URL, or a catalogue name such as llama3.2:3b."
        ),
    )
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument(
        "--ctx", type=int, help="context size in tokens (default: largest up to 8192 that fits)"
    )
    parser.add_argument("--policy", choices=["auto", "gpu-only", "cpu-only"], default="auto")
    parser.add_argument("--vram", help="what if: one GPU with this much memory, e.g. 12G")
    parser.add_argument("--ram", help="what if: this much RAM, e.g. 32G")
    parser.add_argument(
        "--gpu", metavar="NAME", help="what if: this GPU, e.g. 'RTX 4090' (with --vram)"
    )
    parser.add_argument(
        "--hardware", type=Path, help="plan for the machine of a saved `localllm hw --json`"
    )
    parser.add_argument(
        "--workers",
        default="",
        metavar="HOST:PORT,...",
        help="plan across these RPC workers (`localllm worker`) too: the placement per host",
    )
    parser.add_argument(
        "--draft",
        metavar="MODEL",
        help="plan a draft model beside it (speculative decoding; default: the catalogue's)",
    )
    parser.add_argument(
        "--kv-cache-type", choices=["f16", "q8_0", "q4_0"],
        help="the KV cache in this type (PARAMETER kv_cache_type); the plan says what it saves",
    )  # fmt: skip
    parser.add_argument(
        "--no-trial",
        action="store_true",
        help="skip the check against llama.cpp's own trial load (formulas only)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from localllm.engine.trial import trial_load
    from localllm.hardware import detect_live
    from localllm.hardware.bandwidth import measure_cpu_bandwidth
    from localllm.planner.budget import budget_for, parse_size
    from localllm.planner.entry import Beside, plan_model
    from localllm.planner.plan import Candidate, Measure, Policy, plan
    from localllm.planner.settings import LoadSettings, MeasuredBuffers
    from localllm.store.candidates import candidates_for
    from localllm.store.refs import parse_ref

    if args.ctx is not None and args.ctx < 256:
        print("localllm: error: --ctx must be at least 256", file=sys.stderr)
        return 2
    ref = parse_ref(args.model)
    report = _saved_report(args.hardware) if args.hardware else detect_live()
    budget = budget_for(
        report,
        cpu_bandwidth_gbs=measure_cpu_bandwidth(report.cpu.recommended_threads),
        vram=parse_size(args.vram) if args.vram else None,
        ram=parse_size(args.ram) if args.ram else None,
        gpu_name=args.gpu,
    )
    spread = _with_workers(budget, args.workers, quiet=args.json) if args.workers else None
    with tempfile.TemporaryDirectory(prefix="localllm-plan-") as tmp:
        if not args.json:
            print(f"Reading the headers of {ref}...", file=sys.stderr)
        sources = candidates_for(ref, Path(tmp))
        trial_files = {s.candidate.label: s.trial_file for s in sources}

        def measure(candidate: Candidate, settings: LoadSettings) -> MeasuredBuffers:
            return trial_load(trial_files[candidate.label], settings)

        trial = not args.no_trial and report.llama.installed
        candidates = [s.candidate for s in sources]

        def plan_at(room: Budget, measure: Measure | None = None) -> Plan:
            return plan(candidates, room, args.ctx, Policy(args.policy), measure,
                        kv_type=args.kv_cache_type)  # fmt: skip

        # a trial load would not see the workers' devices: across them, formulas only
        here = plan_at(budget, measure if trial else None)
        draft = _draft_of(args.draft or _catalogue_draft(args.model), budget, Path(tmp), args.json)
        beside = Beside(_projector_of(ref), draft)
        result = plan_model(
            lambda room: here if room is budget else plan_at(room), budget, beside, spread
        )
    if args.json:
        json.dump(plan_to_dict(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(result)
    return 0 if result.choice is not None else 1


def _with_workers(budget: Budget, workers: str, quiet: bool) -> Budget:
    """`budget` with the devices of the workers that answer (the others said why)."""
    from localllm.errors import LocalLLMError
    from localllm.planner.budget import with_workers
    from localllm.remote.workers import ask, parse_endpoints

    states = ask(parse_endpoints(workers))
    for state in states:
        if not state.up and not quiet:
            print(f"worker {state.endpoint}: {state.error}; planning without it", file=sys.stderr)
    up = [d for s in states if s.up for d in s.devices]
    if not up:
        raise LocalLLMError("none of the workers answered: nothing to plan across")
    return with_workers(budget, up)


def _projector_of(ref: Any) -> tuple[str, ProjectorShape] | None:
    """The vision projector a pull of `ref` brings (`store.projectors`), from its header:
    a Hub repository's (range reads) or a local folder's; None when it has none."""
    from localllm.gguf.reader import read_header
    from localllm.gguf.source import FileSource
    from localllm.planner.projector import ProjectorShape
    from localllm.store.projectors import is_projector, pick_projector
    from localllm.store.refs import HubRef, PathRef

    if isinstance(ref, HubRef):
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

        from localllm.gguf.remote import fetch_header, list_repo_gguf

        chosen = pick_projector(list_repo_gguf(ref.repo, ref.revision, None, None))
        if chosen is None:
            return None
        url = hf_hub_url(ref.repo, chosen.path, revision=ref.revision)
        header, name = fetch_header(url, build_hf_headers()).header, chosen.path
    elif isinstance(ref, PathRef) and ref.path.is_dir():
        found = sorted(p for p in ref.path.glob("*.gguf") if is_projector(p.name))
        if not found:
            return None
        with FileSource(found[0]) as f:
            header, name = read_header(f), found[0].name
    else:
        return None
    tensors = {t.name: t.nbytes for t in header.tensors}
    return name, ProjectorShape.from_header(header.metadata, tensors)


def _catalogue_draft(model: str) -> str | None:
    from localllm.store.catalogue import Catalogue
    from localllm.store.names import ModelNameError, parse_name

    try:
        resolved = Catalogue().resolve(parse_name(model))
    except (ModelNameError, ValueError):
        return None
    return resolved.modelfile.draft if resolved else None


def _draft_of(
    draft: str | None, budget: Budget, tmp: Path, quiet: bool
) -> tuple[str, ModelInfo] | None:
    """The draft model's facts, from the headers of the quantization the planner picks
    for it alone (None: no draft, or one that fits nowhere)."""
    from localllm.planner.plan import plan
    from localllm.store.candidates import candidates_for
    from localllm.store.refs import parse_ref

    if not draft:
        return None
    if not quiet:
        print(f"Reading the headers of the draft model {draft}...", file=sys.stderr)
    (tmp / "draft").mkdir(exist_ok=True)
    sources = candidates_for(parse_ref(draft), tmp / "draft")
    alone = plan([s.candidate for s in sources], budget, None).choice
    if alone is None:
        return None
    return f"{draft} ({alone.label})", alone.candidate.model


def _saved_report(path: Path) -> HardwareReport:
    from localllm.hardware import HardwareReport, ReportFormatError

    try:
        return HardwareReport.from_dict(json.loads(path.read_text()))
    except OSError as exc:
        raise ReportFormatError(f"{path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ReportFormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def plan_to_dict(p: Plan) -> dict[str, Any]:
    from dataclasses import asdict

    from localllm.planner.explain import explain
    from localllm.planner.quality import kl_divergence

    def option(o: Any) -> dict[str, Any]:
        e = o.estimate
        return {
            "quantization": o.label,
            "files": list(o.candidate.files),
            "download_bytes": o.candidate.download_bytes,
            "fit": o.fit.value,
            "n_gpu_layers": o.settings.n_gpu_layers,
            "n_layer": e.n_layer,
            "gpu_bytes": sum(g.total for g in e.gpus),
            "ram_bytes": e.host.total,
            "tokens_per_s": round(o.tokens_per_s, 1) if o.tokens_per_s else None,
            "kl_divergence": kl_divergence(o.label),
            "short_by_bytes": o.short_by or None,
            "measured": o.measured,
        }

    from localllm.planner.placement import placement

    choice = p.choice
    chosen = None
    if choice is not None:
        chosen = option(choice) | {
            "settings": asdict(choice.settings),
            "placement": [asdict(x) for x in placement(choice.estimate, p.budget)],
        }
    return {
        "model": p.model,
        "n_ctx": p.n_ctx,
        "policy": p.policy.value,
        "choice": chosen,
        "options": [option(o) for o in p.options],
        "explanation": explain(p),
        "what_if": list(p.budget.what_if),
    }


def render(p: Plan) -> None:
    from rich.table import Table

    from localllm.cli.output import Printer
    from localllm.planner.explain import explain
    from localllm.planner.quality import describe_cost

    table = Table(title=f"{p.model} at {p.n_ctx} tokens of context", title_justify="left")
    for column in ("", "quant", "download", "fit", "GPU", "RAM", "tokens/s", "quality loss"):
        table.add_column(
            column, justify="right" if column in ("download", "GPU", "RAM", "tokens/s") else "left"
        )
    for o in sorted(p.options, key=lambda o: -o.candidate.model.size_bytes):
        e = o.estimate
        fit = o.fit.value
        if fit == "partial":
            fit = f"partial {o.settings.n_gpu_layers}/{e.n_layer + 1}"
        if fit == "won't fit":
            fit = f"[red]won't fit[/red] (short {format_bytes(o.short_by)})"
        picked = o is p.choice or (p.choice is not None and o.label == p.choice.label)
        gpu = sum(g.total for g in e.gpus)
        table.add_row(
            "[bold green]>[/bold green]" if picked else "",
            f"[bold]{o.label}[/bold]" if picked else o.label,
            format_bytes(o.candidate.download_bytes) if o.candidate.download_bytes else "local",
            fit,
            format_bytes(gpu) if gpu else "-",
            format_bytes(e.host.total),
            f"{o.tokens_per_s:.0f}" if o.tokens_per_s else "-",
            describe_cost(o.label),
        )
    console = Printer()
    console.print(table)
    for line in explain(p):
        console.print(f"  {line}", highlight=False)
    if p.choice is not None and any(g.endpoint for g in p.budget.gpus):
        from localllm.planner.placement import hosts, placement

        console.print("Placement:")
        for line in hosts(placement(p.choice.estimate, p.budget)):
            console.print(f"  {line}", highlight=False)
