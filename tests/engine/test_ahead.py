"""Decoding ahead (localllm/engine/ahead.py): in the steady state of an overlapped step
the next decode is launched from the tokens just read, before their bookkeeping. The
answers, and what the slots' caches hold, are the in-order engine's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.protocol import Done, Event, Failed, Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings

GREEDY = Sampling(temperature=0, num_predict=40, repeat_penalty=1.0, prompt_lookup=False)
PROMPTS = ["Once upon a time", "The capital of", "def main():"]


@pytest.fixture(scope="module")
def model(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    settings = LoadSettings(
        n_gpu_layers=0, n_ctx=4 * 512, n_seq_max=4, n_threads=2, backend_sampling=True
    )
    m = LlamaModel([str(tiny_files["tiny"])], settings, ())
    yield m
    m.close()


def engine_for(model: LlamaModel, overlap: bool) -> Engine:
    engine = Engine(model, StepProfile(), overlap=overlap)
    for slot in engine.slots:  # every test starts from empty caches
        slot.cached = []
    return engine


def step_until_done(engine: Engine, events: dict[int, list[Event]]) -> None:
    while engine.busy:
        for event in engine.step():
            events.setdefault(event.id, []).append(event)


def texts(events: dict[int, list[Event]]) -> dict[int, str]:
    return {i: "".join(e.text for e in ev if isinstance(e, Piece)) for i, ev in events.items()}


def answers(
    model: LlamaModel, requests: list[Generate], overlap: bool
) -> tuple[dict[int, str], Engine]:
    engine = engine_for(model, overlap)
    for request in requests:
        engine.submit(request)
    events: dict[int, list[Event]] = {}
    step_until_done(engine, events)
    assert all(isinstance(ev[-1], Done) for ev in events.values())
    return texts(events), engine


def asks(sampling: Sampling = GREEDY) -> list[Generate]:
    return [Generate(i + 1, prompt=p, sampling=sampling) for i, p in enumerate(PROMPTS)]


def test_steady_streams_decode_ahead_and_answer_the_same(model: LlamaModel) -> None:
    in_order, first = answers(model, asks(), overlap=False)
    ahead, second = answers(model, asks(), overlap=True)
    assert ahead == in_order
    assert second.profile is not None and first.profile is not None
    assert first.profile.ahead == 0  # a CPU's decode blocks: nothing to gain
    assert second.profile.ahead > second.profile.steps // 2
    # the caches hold the same tokens: an answer's end is known before a decode ahead
    assert [s.cached for s in second.slots] == [s.cached for s in first.slots]
    first.close()
    second.close()


def test_decode_ahead_can_be_switched_off(model: LlamaModel) -> None:
    ahead, first = answers(model, asks(), overlap=True)
    engine = engine_for(model, overlap=True)
    engine.ahead = False  # benchmarks/gpu/step.py: what going ahead saves
    for request in asks():
        engine.submit(request)
    events: dict[int, list[Event]] = {}
    step_until_done(engine, events)
    assert texts(events) == ahead
    assert engine.profile is not None and engine.profile.ahead == 0
    first.close()
    engine.close()


def test_a_stop_sequence_ends_a_stream_decoded_ahead(model: LlamaModel) -> None:
    plain, engine = answers(model, asks(), overlap=False)
    engine.close()
    stop = plain[2][len(plain[2]) // 2 :][:3]  # text from the middle of the second answer
    stopped = replace(GREEDY, stop=(stop,))
    requests = asks()
    requests[1] = replace(requests[1], sampling=stopped)
    expected, engine = answers(model, requests, overlap=False)
    engine.close()
    assert expected[2] == plain[2][: plain[2].index(stop)]
    got, engine = answers(model, requests, overlap=True)
    assert got == expected
    assert engine.profile is not None and engine.profile.ahead > 0
    engine.close()


def test_a_request_arriving_meanwhile_joins_a_step_later(model: LlamaModel) -> None:
    alone, engine = answers(model, asks(), overlap=False)
    engine.close()
    engine = engine_for(model, overlap=True)
    first, *rest = asks()
    events: dict[int, list[Event]] = {}
    for request in rest:
        engine.submit(request)
    assert engine.profile is not None
    while engine.profile.ahead < 3:  # the two streams run ahead
        for event in engine.step():
            events.setdefault(event.id, []).append(event)
    engine.submit(first)
    step_until_done(engine, events)
    assert texts(events) == alone
    engine.close()


def test_a_stream_cancelled_meanwhile_leaves_the_others_alone(model: LlamaModel) -> None:
    alone, engine = answers(model, asks(), overlap=False)
    engine.close()
    engine = engine_for(model, overlap=True)
    for request in asks():
        engine.submit(request)
    events: dict[int, list[Event]] = {}
    assert engine.profile is not None
    while engine.profile.ahead < 3:
        for event in engine.step():
            events.setdefault(event.id, []).append(event)
    cancelled = engine.cancel(2)
    assert isinstance(cancelled, Failed) and cancelled.status == 499
    step_until_done(engine, events)
    got = texts(events)
    assert got[1] == alone[1] and got[3] == alone[3]
    assert alone[2].startswith(got[2])
    slot = next(s for s in engine.slots if s.cached and s.job is None)
    assert all(s.job is None for s in engine.slots) and slot.cached
    # the cancelled slot's record matches its cache: its prompt again reuses it, same answer
    again, rerun = engine, {}  # type: ignore[var-annotated]
    again.submit(Generate(9, prompt=PROMPTS[1], sampling=GREEDY))
    step_until_done(again, rerun)
    assert texts(rerun)[9] == alone[2]
    engine.close()


def test_streams_that_guess_or_draw_are_not_decoded_ahead(model: LlamaModel) -> None:
    sampled = replace(GREEDY, temperature=0.8, seed=7)
    _, engine = answers(model, [Generate(1, prompt=PROMPTS[0], sampling=sampled)], True)
    assert engine.profile is not None and engine.profile.ahead == 0
    engine.close()
    logprobs = replace(GREEDY, logprobs=2)
    _, engine = answers(model, [Generate(1, prompt=PROMPTS[0], sampling=logprobs)], True)
    assert engine.profile is not None and engine.profile.ahead == 0
    engine.close()
