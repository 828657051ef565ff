"""A step's text worked out while the device computes the next (`Engine.overlap`, a
GPU's order), checked on the CPU: the same answers as in order, also where a stop
sequence ends an answer whose next token is already being decoded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Event, Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings
from tests.engine.test_batch import run

GREEDY = Sampling(temperature=0, num_predict=32, repeat_penalty=1.0)
PROMPTS = ["Once upon a time", "The capital of", "def main():"]


@pytest.fixture(scope="module")
def model(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 256, n_seq_max=4, n_threads=2)
    m = LlamaModel([str(tiny_files["tiny"])], settings, ())
    yield m
    m.close()


def answer(events: list[Event]) -> tuple[str, str, int, str]:
    """(text, reason, tokens, stop sequence), the pieces checked against the text."""
    done = events[-1]
    assert isinstance(done, Done)
    pieces = "".join(e.text for e in events if isinstance(e, Piece))
    assert pieces == done.content
    return done.content, done.reason, done.eval_tokens, done.stop_sequence


def both(
    model: LlamaModel, *batches: tuple[Generate, ...]
) -> list[list[tuple[str, str, int, str]]]:
    """The answers of these batches, one after the other on one engine, in each order."""
    out = []
    for overlap in (False, True):
        engine = Engine(model, overlap=overlap)
        try:
            out.append([answer(run(engine, *b)[r.id]) for b in batches for r in b])
        finally:
            engine.close()
    return out


def test_stop_sequences_end_answers_alike(model: LlamaModel) -> None:
    engine = Engine(model)
    free = [answer(run(engine, Generate(i, prompt=p, sampling=GREEDY))[i])[0]
            for i, p in enumerate(PROMPTS)]  # fmt: skip
    engine.close()
    stops = [text[len(text) // 2 : len(text) // 2 + 3] or "x" for text in free]
    stopped = tuple(
        Generate(i, prompt=p, sampling=Sampling(temperature=0, num_predict=32, stop=(s,)))
        for i, (p, s) in enumerate(zip(PROMPTS, stops, strict=True))
    )
    then = tuple(  # the same prompts again: each slot's cache must say what it holds
        Generate(10 + i, prompt=p + free[i][:5], sampling=GREEDY) for i, p in enumerate(PROMPTS)
    )
    in_order, overlapped = both(model, stopped, then)
    assert overlapped == in_order
    assert [a[1] for a in in_order[:3]] == ["stop"] * 3 and all(a[3] for a in in_order[:3])


def test_limits_and_sampled_answers_alike(model: LlamaModel) -> None:
    requests = (
        Generate(1, prompt=PROMPTS[0], sampling=Sampling(temperature=0, num_predict=1)),
        Generate(2, prompt=PROMPTS[1], sampling=Sampling(temperature=0.8, seed=3, num_predict=20)),
        Generate(3, prompt=PROMPTS[2], sampling=Sampling(temperature=0, num_predict=7)),
    )
    in_order, overlapped = both(model, requests)
    assert overlapped == in_order
    assert [a[2] for a in in_order] == [1, 20, 7] or in_order[1][1] == "stop"


def test_a_sink_gets_the_text_while_the_device_computes(model: LlamaModel) -> None:
    """With a sink (the worker's socket), an overlapped step hands it the text of the
    last step's tokens before it waits for the device; the answers are the same."""
    requests = [Generate(i, prompt=p, sampling=GREEDY) for i, p in enumerate(PROMPTS)]
    answers, sinks = [], 0
    sunk: list[list[Event]] = []
    for with_sink in (False, True):
        engine = Engine(model, overlap=True)
        if with_sink:
            engine.sink = sunk.append
        for r in requests:
            engine.submit(r)
        events: list[Event] = []
        while engine.busy:
            returned = engine.step()  # what the sink got during the step went out first
            events += [e for batch in sunk for e in batch] + returned
            sinks += len(sunk)
            sunk.clear()
        engine.close()
        answers.append([answer([e for e in events if e.id == r.id]) for r in requests])
    assert answers[0] == answers[1]
    assert sinks > 10
