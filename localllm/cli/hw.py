"""`localllm hw`: the hardware report, readable or as versioned JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from localllm.units import format_bytes

if TYPE_CHECKING:
    from rich.console import RenderableType

    from localllm.hardware import HardwareReport

HELP = "show what this machine and its llama.cpp build can run"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "hw",
        help=HELP,
        description=(
            "Detect the CPU, memory, NUMA nodes and GPUs, and what the installed llama.cpp "
            "build can use. Anything that cannot be detected is listed with the reason."
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as JSON (schema documented in the README; 'schema_version' key)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from localllm.hardware import detect_live

    report = detect_live()
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from localllm.cli.output import Printer

    console = Printer()
    for part in render(report):
        console.print(part)
    return 0


def render(report: HardwareReport) -> list[RenderableType]:
    """The report as rich renderables: a summary grid, then GPUs, then notes."""
    from rich.table import Table

    cpu, mem, llama = report.cpu, report.memory, report.llama
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("OS", report.os_release)
    summary.add_row("CPU", f"{cpu.brand} ({cpu.architecture})")
    summary.add_row("Cores", _cores(report))
    summary.add_row("Threads", f"{cpu.recommended_threads} recommended for llama.cpp")
    summary.add_row("CPU flags", " ".join(cpu.flags) or "unknown")
    memory = f"{format_bytes(mem.total)} total, {format_bytes(mem.available)} available"
    if mem.cgroup_limit is not None:
        memory += " (container limit)"
    summary.add_row("Memory", memory)
    swap = f"{format_bytes(mem.swap_free)} free of {format_bytes(mem.swap_total)}"
    summary.add_row("Swap", swap if mem.swap_total else "none")
    if len(mem.numa_nodes) > 1:
        nodes = ", ".join(
            f"node {n.id}: {len(n.cpus)} CPUs, {format_bytes(n.memory_total)}"
            for n in mem.numa_nodes
        )
        summary.add_row("NUMA", nodes)
    if llama.installed:
        summary.add_row(
            "llama.cpp",
            f"llama-cpp-python {llama.version or '?'}; backends: {', '.join(llama.backends)}; "
            f"GPU offload: {'yes' if llama.gpu_offload else 'no'}",
        )
        summary.add_row(
            "RPC workers",
            "this build can serve (`localllm worker`) and use (`serve --workers`) them"
            if "rpc" in llama.backends
            else 'not in this build (reinstall with CMAKE_ARGS="-DGGML_RPC=ON")',
        )
        summary.add_row("Build uses", " ".join(llama.cpu_features) or "unknown")
    else:
        summary.add_row("llama.cpp", "not installed")

    out: list[RenderableType] = [summary]
    if report.gpus:
        gpus = Table(title="GPUs", title_justify="left", title_style="bold")
        for column in ("#", "GPU", "memory free / total", "compute", "driver / CUDA", "llama.cpp"):
            gpus.add_column(column)
        for g in report.gpus:
            shared = " (shared with RAM)" if g.unified_memory else ""
            gpus.add_row(
                str(g.index),
                g.name,
                f"{format_bytes(g.memory_free)} / {format_bytes(g.memory_total)}{shared}",
                g.compute_capability or "-",
                " / ".join(v for v in (g.driver_version, g.cuda_version) if v) or "-",
                f"yes ({g.backend})" if g.usable_by_llama else "[red]no[/red]",
            )
        out.append(gpus)
    else:
        out.append("[bold]GPUs[/bold]  none usable: models run on the CPU")
    if report.notes:
        out.append("[bold]Notes[/bold]")
        out.extend(f"  - {note}" for note in report.notes)
    return out


def _cores(report: HardwareReport) -> str:
    cpu = report.cpu
    text = (
        f"{cpu.sockets} socket{'s' if cpu.sockets != 1 else ''}, "
        f"{cpu.physical_cores} physical, {cpu.logical_cores} logical"
    )
    if cpu.performance_cores is not None and cpu.efficiency_cores:
        text += f" ({cpu.performance_cores} performance + {cpu.efficiency_cores} efficiency)"
    if cpu.usable_cpus < cpu.logical_cores:
        text += f"; {cpu.usable_cpus} usable by this process"
    return text
