"""The tokens each speculating stream guesses this step, for one decode to check:
prompt lookup's at once, or the draft model's in its own batched decodes. The batch
(`engine.batch`) asks only while guessing pays (`speculation.Payoff`).

With a cache per sequence, llama.cpp splits a batch into micro-batches of equal
tokens per sequence (`split_equal` in `llama-batch.cpp`): streams guessing different
numbers of tokens are checked in one pass of the weights per distinct length. On a
GPU, where a pass of a few more rows costs what a pass of fewer does, `pad` makes the
lengths of streams sampled by the graph's argmax equal: a filler guess is checked
like any other (kept only where the model picks that very token), and counts for
nothing in how a stream's guesses fare."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import llama_cpp

from localllm.engine.draft import Ask, DraftModel
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.slots import Slot
from localllm.engine.speculation import (
    DRAFT_GUESSES_PER_STEP,
    GUESSES_PER_STEP,
    K_MAX,
    Guessing,
)


def context_room(slot: Slot, n_ctx_slot: int) -> int:
    """Guesses a stream's slot has room for after its next token (`n_ctx_slot`: a slot's
    context), one cell kept for the token the last guess's logits give."""
    return n_ctx_slot - len(slot.cached) - 2


def propose(
    generating: list[Slot],
    draft: DraftModel | None,
    guessing: Guessing,
    capacity: int,
    n_ctx_slot: int,
    profile: StepProfile | None,
) -> tuple[dict[int, list[int]], bool]:
    """({sequence: its guesses}, whether the draft model caught up with a whole new
    prompt meanwhile: a step whose time says nothing of guessing's pay). `guessing`: up
    to how many streams guess; `capacity`: the batch's tokens; `n_ctx_slot`: a slot's
    context."""
    if not generating or len(generating) > guessing.up_to:
        return {}, False
    per_step = GUESSES_PER_STEP if draft is None else DRAFT_GUESSES_PER_STEP
    share = min(capacity - len(generating), per_step) // len(generating)
    drafts: dict[int, list[int]] = {}
    asks: list[Ask] = []
    for slot in generating:
        job = slot.job
        assert job is not None
        room = min(share, context_room(slot, n_ctx_slot))
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


def pad(generating: list[Slot], drafts: dict[int, list[int]], n_ctx_slot: int) -> dict[int, int]:
    """Give every stream of the step as many guesses as the longest has, and a steady
    pace's streams their whole length (`speculation.STEADY_LENGTH`: the batch keeps its
    shape from step to step), when all of them speculate and take their tokens by the
    graph's argmax (a draw's guesses carry the draft's odds, which a filler has not;
    rows read on the host would bring their logits across); {sequence: its own guesses'
    count} for those padded. The filler repeats a stream's last guess, or its last
    token; none goes past a slot's context (`n_ctx_slot`)."""
    longest = max((len(d) for d in drafts.values()), default=0)
    if not longest:
        return {}
    for slot in generating:
        job = slot.job
        if job is None or job.pace is None or not job.graph_greedy:
            return {}
        if job.pace.steady:
            longest = max(longest, job.pace.k)
    own: dict[int, int] = {}
    for slot in generating:
        assert slot.job is not None
        guessed = drafts.get(slot.seq, [])
        length = min(longest, context_room(slot, n_ctx_slot))
        if len(guessed) < length:
            own[slot.seq] = len(guessed)
            filler = guessed[-1] if guessed else slot.job.pending[0]
            drafts[slot.seq] = guessed + [filler] * (length - len(guessed))
    return own


def verify(
    model: LlamaModel,
    slot: Slot,
    draft: list[int],
    row: tuple[int, int, int],
    draw: Callable[[Any, Any, int], int],
    n_ctx: int,
    profile: StepProfile | None,
) -> None:
    """Keep the guesses the model agrees with. `row`: (the stream's batch index, the
    token drawn there, how many of `draft` are its own). While the token it chose is the
    next guess, that guess's logits (the outputs after the index) give the token after
    it. The cache keeps the agreed guesses and drops the rest. The stream's own guesses
    come first; the rest, filler (`pad`), are judged as guesses but count for nothing
    in its pace. `n_ctx`: where the answer ends (`Job.take`)."""
    job = slot.job
    assert job is not None and job.pace is not None
    index, token, mine = row
    agreed = 0
    while job.pending and agreed < len(draft) and token == draft[agreed]:
        slot.cached.append(draft[agreed])
        agreed += 1
        token = draw(job.sampler, model.ctx, index + agreed)
        job.take(token, len(slot.cached), n_ctx)
        if job.lookup is not None:
            job.lookup.push(token)
    llama_cpp.llama_memory_seq_rm(model.memory, slot.seq, len(slot.cached), -1)
    judged = mine if job.pending else min(agreed, mine)  # an ended answer judged no more
    job.pace.update(judged, min(agreed, mine))
    if profile is not None:
        profile.tokens += agreed
        profile.drafted += judged
        profile.agreed += min(agreed, mine)
