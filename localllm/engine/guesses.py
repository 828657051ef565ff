"""The tokens each speculating stream guesses this step, for one decode to check:
prompt lookup's at once, or the draft model's in its own batched decodes. The batch
(`engine.batch`) asks only while guessing pays (`speculation.Payoff`)."""

from __future__ import annotations

import time

from localllm.engine.draft import Ask, DraftModel
from localllm.engine.profile import StepProfile
from localllm.engine.slots import Slot
from localllm.engine.speculation import (
    DRAFT_GUESSES_PER_STEP,
    DRAFT_UP_TO,
    GUESSES_PER_STEP,
    K_MAX,
    SPECULATE_UP_TO,
)


def propose(
    generating: list[Slot],
    draft: DraftModel | None,
    capacity: int,
    n_ctx_slot: int,
    profile: StepProfile | None,
) -> tuple[dict[int, list[int]], bool]:
    """({sequence: its guesses}, whether the draft model caught up with a whole new
    prompt meanwhile: a step whose time says nothing of guessing's pay).
    `capacity`: the batch's tokens; `n_ctx_slot`: a slot's context."""
    up_to = SPECULATE_UP_TO if draft is None else DRAFT_UP_TO
    if not generating or len(generating) > up_to:
        return {}, False
    per_step = GUESSES_PER_STEP if draft is None else DRAFT_GUESSES_PER_STEP
    share = min(capacity - len(generating), per_step) // len(generating)
    drafts: dict[int, list[int]] = {}
    asks: list[Ask] = []
    for slot in generating:
        job = slot.job
        assert job is not None
        room = min(share, n_ctx_slot - len(slot.cached) - 2)
        if job.pace is None or room <= 0:
            continue
        if job.lookup is not None:
            found = job.lookup.draft(room)
            if found:
                drafts[slot.seq] = found
        elif k := job.pace.length(room):
            text = [*slot.cached, job.pending[0]]
            asks.append(Ask(slot.seq, text, k, job.request.sampling.ignore_eos))
    if not asks or draft is None:
        return drafts, False
    start = time.perf_counter_ns()
    drafts.update(draft.propose(asks))
    if profile is not None:
        profile.add("draft", time.perf_counter_ns() - start)
    return drafts, draft.caught_up > (K_MAX + 1) * len(asks)
