"""The planner for the machine this process runs on: its budget, measured, and a
`choose` for `store.pull` that checks the pick with a llama.cpp trial load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from localllm.planner.budget import Budget

if TYPE_CHECKING:
    from localllm.planner.plan import Plan
    from localllm.store.candidates import Source


@dataclass(frozen=True)
class Machine:
    budget: Budget
    can_trial: bool
    """llama.cpp is installed, so picks can be checked by trial loads."""


def this_machine(quick: bool = False) -> Machine:
    """Detect the hardware and measure memory bandwidth (about 1 s; `quick`: a
    rougher bandwidth figure in milliseconds, enough to fit one file)."""
    from localllm.hardware import detect_live
    from localllm.hardware.bandwidth import measure_cpu_bandwidth
    from localllm.planner.budget import budget_for

    report = detect_live()
    threads = report.cpu.recommended_threads
    if quick:
        bandwidth = measure_cpu_bandwidth(threads, megabytes=64, repeats=2)
    else:
        bandwidth = measure_cpu_bandwidth(threads)
    return Machine(budget_for(report, bandwidth), report.llama.installed)


class Chooser:
    """A `choose` for `pull`: plans the quantizations on `budget`, trial-loading the pick."""

    def __init__(self, machine: Machine, n_ctx: int | None = None) -> None:
        self.machine = machine
        self.n_ctx = n_ctx

    def __call__(self, sources: list[Source]) -> Plan:
        from localllm.engine.trial import trial_load
        from localllm.planner.plan import plan

        files = {s.candidate.label: s.trial_file for s in sources}
        measure = (lambda c, s: trial_load(files[c.label], s)) if self.machine.can_trial else None
        candidates = [s.candidate for s in sources]
        return plan(candidates, self.machine.budget, n_ctx=self.n_ctx, measure=measure)


def planner_for_this_machine(ctx: int | None = None) -> Chooser:
    return Chooser(this_machine(), ctx)
