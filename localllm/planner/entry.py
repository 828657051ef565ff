"""One entry to plan a model with everything that loads beside it: `localllm plan`
(before a download, from headers) and the server's loads (`workers.loading`) both
plan through `plan_model`, so a vision projector, a draft model and RPC workers are
counted the same way in both.

`plan_at(room)` plans the model alone in `room` (the caller's candidates, context,
policy and trial loads); here it is called again with less room when the model and
what goes beside it do not fit together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from localllm.gguf.info import ModelInfo
from localllm.planner.budget import Budget
from localllm.planner.draft import plan_with_draft
from localllm.planner.placement import workers_pay
from localllm.planner.plan import Plan
from localllm.planner.projector import ProjectorShape, plan_with_projector

PlanAt = Callable[[Budget], Plan]


@dataclass(frozen=True)
class Beside:
    """What loads with the model, each with the name its notes use."""

    projector: tuple[str, ProjectorShape] | None = None
    draft: tuple[str, ModelInfo] | None = None


def plan_model(
    plan_at: PlanAt, budget: Budget, beside: Beside = Beside(), across: Budget | None = None
) -> Plan:
    """The model's plan on `budget` (or across the RPC workers of `across`, where they
    pay), with its projector and its draft model beside its choice."""
    result = plan_at(budget)
    if across is not None:
        result = here_or_across(result, plan_at(across))
    if beside.projector is not None and result.choice is not None:
        name, shape = beside.projector
        result = plan_with_projector(result, shape, name, plan_at)
    if beside.draft is not None and result.choice is not None:
        name, info = beside.draft
        result = plan_with_draft(result, info, name, plan_at)
    return result


def here_or_across(here: Plan, across: Plan) -> Plan:
    """The plan across the workers where they pay (`workers_pay`), else this machine's."""
    if across.choice is None:
        return across  # it says what each host has and how much more it would take
    why = workers_pay(here.choice, across.choice)
    if why is None:
        note = "Planned on this machine alone: the workers would only add network hops."
        return replace(here, notes=(note,))
    return replace(across, notes=(f"Planned across the workers: {why}.",))
