"""The next decode launched straight from the tokens just read, before their bookkeeping.

On a GPU the device idles from the moment a step's tokens are read until the next
`llama_decode` is queued: meanwhile the engine takes each token (its end, its count),
updates the slots, admits, and builds the next batch, a millisecond or more of Python
at 64 streams against a 6 ms decode. In the steady state the next batch is this one
with each row's token replaced and its position one on: every running stream is greedy
in the graph, guesses nothing and goes on after this token, no prompt is being taken
in and nothing waits to be admitted. Then the engine puts and launches that batch
first, and does the bookkeeping while the device computes (`Engine._finish`).

What a request produces does not change: the tokens are the ones the bookkeeping would
have put, and a stream whose text ends meanwhile (a stop sequence, a cancel) has its
row ignored, as any overlapped step does. A new request waits one step more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localllm.engine.job import Job
from localllm.engine.profile import StepProfile
from localllm.engine.slots import Slot
from localllm.engine.tokenbatch import TokenBatch


@dataclass
class Launched:
    """A decode in flight and what its step must do once its tokens are read."""

    everyone: list[Slot]
    """The running slots of the step (the text of their last tokens is due)."""
    running: list[Slot]
    """Those decoded (one set of adapters a decode)."""
    generating: list[Slot]
    fed: list[tuple[Slot, int]]
    """Each generating stream's token in the batch: in its cache once decoded."""
    outputs: list[tuple[Slot, int]]
    """(slot, batch index) of every row whose token is read, in batch order."""
    built_from: int
    """`perf_counter_ns` when the step began building (its time, for the chunk rule)."""
    launched_ns: int
    """`perf_counter_ns` when `llama_decode` returned."""
    taken: dict[int, int] = field(default_factory=dict)
    """Prompt tokens decoded, by sequence."""
    drafts: dict[int, list[int]] = field(default_factory=dict)
    """Guesses in the batch after each stream's token, by sequence."""
    own: dict[int, int] = field(default_factory=dict)
    """Padded streams' own guesses (`guesses.pad`)."""
    jobs: list[Job] = field(default_factory=list)
    """The generating streams' jobs as the step began."""
    speculating: bool = False
    """Whether `Payoff` was asked if the step guesses (its time then tells it)."""
    guessed: bool = False
    """Its answer."""
    emitted_before: int = 0
    """Their tokens so far as the step began."""


def steady(
    done: Launched, picked: Mapping[int, int], n_ctx: int, up_to: int, waiting: bool
) -> bool:
    """Whether the step after `done` is `done`'s batch with the tokens just `picked`
    ({batch index: token}) and positions one on. `n_ctx`: a slot's context (streams
    that shift theirs, 0, are left to the full step); `up_to`: the most streams that
    guess (`speculation.Guessing.up_to`); `waiting`: requests wait to be admitted.
    Where it is, and the streams are few enough to guess, each one's pause counts this
    step (`Pace.rest`): the caller launches it at once."""
    if waiting or done.taken or done.drafts or not done.outputs:
        return False
    if not (len(done.everyone) == len(done.running) == len(done.generating) == len(done.outputs)):
        return False  # a prompt being taken in, or streams of other adapters
    can_guess = len(done.outputs) <= up_to
    for slot, index in done.outputs:
        job = slot.job
        if job is None or not _plain(job) or index not in picked:
            return False
        if job.pace is not None and can_guess and not job.pace.resting:
            return False
        if job.ends_at(picked[index], len(slot.cached), n_ctx) is not None:
            return False
    if can_guess:  # each paused stream's pause counts this step, as asking would have
        for slot, _ in done.outputs:
            if slot.job is not None and slot.job.pace is not None:
                slot.job.pace.rest()
    return True


def launch(
    batch: TokenBatch, ctx: Any, done: Launched, picked: Mapping[int, int],
    profile: StepProfile | None,
) -> Launched | None:  # fmt: skip
    """Put and launch `done`'s batch again with the tokens just `picked`, each a position
    on (the caller checked `steady`); None if `llama_decode` refused it (the full step
    then puts the same batch again, and fails it)."""
    start = time.perf_counter_ns()
    fed, outputs = [], []
    for i, (slot, index) in enumerate(done.outputs):
        token = picked[index]
        batch.put(i, token, slot.pos, slot.seq, True)
        fed.append((slot, token))
        outputs.append((slot, i))
    built = time.perf_counter_ns()
    if batch.decode(ctx, len(outputs)) != 0:
        return None
    launched = time.perf_counter_ns()  # as in the full step: a CPU's decode is done here
    if profile is not None:
        profile.add("batch", built - start)
        profile.add("decode", launched - built)
        profile.rows, profile.prompt_rows = len(outputs), 0
        profile.ahead += 1
    jobs = [slot.job for slot, _ in outputs if slot.job is not None]
    running = done.running
    return Launched(running, running, running, fed, outputs, start, launched, jobs=jobs)


def _plain(job: Job) -> bool:
    """A stream whose next token is its row's argmax in the graph and nothing else:
    no draws on the host, no logprobs, no images."""
    return (
        job.graph_greedy
        and job.rejection is None
        and job.vision is None
        and not job.prefilling
        and job.request.sampling.logprobs < 0
    )
