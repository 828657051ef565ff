"""Sampling inside llama.cpp's graph (`LoadSettings.backend_sampling`), here on the CPU
backend: greedy answers are the same as the CPU chain's at any concurrency, seeded
ones reproducible, and requests that need the logits (grammars, logprobs) still get
them beside the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localllm.constraints.grammar import json_grammar
from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings

pytestmark = pytest.mark.slow
GREEDY = Sampling(temperature=0, num_predict=40, repeat_penalty=1.0, ignore_eos=True)
SEEDED = Sampling(temperature=0.9, top_k=20, top_p=0.9, min_p=0.05, seed=7, num_predict=40,
                  repeat_penalty=1.1)  # fmt: skip


def engine_for(path: Path, backend: bool) -> tuple[LlamaModel, Engine]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 512, n_seq_max=4, n_threads=2,
                            backend_sampling=backend)  # fmt: skip
    model = LlamaModel([str(path)], settings, ())
    return model, Engine(model)


@pytest.fixture(scope="module")
def engines(tiny_files: dict[str, Path]) -> Iterator[dict[bool, Engine]]:
    made = {flag: engine_for(tiny_files["tiny"], flag) for flag in (False, True)}
    yield {flag: engine for flag, (_, engine) in made.items()}
    for model, engine in made.values():
        engine.close()
        model.close()


def answers(engine: Engine, *requests: Generate) -> dict[int, str]:
    for request in requests:
        engine.submit(request)
    texts = {r.id: "" for r in requests}
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                texts[event.id] += event.text
            else:
                assert isinstance(event, Done), event
    return texts


@pytest.mark.parametrize("ends", [True, False], ids=["ignore_eos", "may-end"])
def test_greedy_is_the_same_in_the_graph_at_any_concurrency(
    engines: dict[bool, Engine], ends: bool
) -> None:
    """One argmax in the graph for every row (`engine.graph_argmax`), with the end
    tokens banned for `ignore_eos`, gives the CPU greedy answers."""
    sampling = replace(GREEDY, ignore_eos=ends)
    prompts = ["Once upon", "The cat", "In a land", "Hello"]
    alone = {i: answers(engines[False], Generate(i, prompt=p, sampling=sampling))[i]
             for i, p in enumerate(prompts)}  # fmt: skip
    together = answers(engines[True], *(Generate(i, prompt=p, sampling=sampling)
                                        for i, p in enumerate(prompts)))  # fmt: skip
    assert together == alone


def test_greedy_rows_beside_a_sampled_stream(engines: dict[bool, Engine]) -> None:
    """Greedy streams share their argmax while a seeded one draws from its own chain,
    and more requests than slots wait their turn."""
    prompts = ["Once upon", "The cat", "In a land", "Hello", "ab", "1, 2"]
    alone = {i: answers(engines[False], Generate(i, prompt=p, sampling=GREEDY))[i]
             for i, p in enumerate(prompts)}  # fmt: skip
    seeded = Generate(99, prompt="Once upon", sampling=SEEDED)
    expected = answers(engines[True], seeded)[99]
    together = answers(engines[True], seeded, *(Generate(i, prompt=p, sampling=GREEDY)
                                                for i, p in enumerate(prompts)))  # fmt: skip
    assert together.pop(99) == expected
    assert together == alone


def test_greedy_requests_change_no_graph_sampler(
    tiny_files: dict[str, Path], engines: dict[bool, Engine]
) -> None:
    """Attaching or detaching a chain makes llama.cpp plan its graph again, which holds
    every running stream for that step: greedy requests, alone or joining others, run
    on the chains the context was made with."""
    model, engine = engine_for(tiny_files["tiny"], True)
    texts = {1: "", 2: ""}
    engine.submit(Generate(1, prompt="Once upon", sampling=GREEDY))
    steps = 0
    while engine.busy:
        if steps == 2:
            engine.submit(Generate(2, prompt="The cat", sampling=GREEDY))
        for event in engine.step():
            if isinstance(event, Piece):
                texts[event.id] += event.text
        steps += 1
    assert engine._graph.changes == 0 and engine._graph.home == 4
    for i, prompt in ((1, "Once upon"), (2, "The cat")):
        assert (
            texts[i]
            == answers(engines[False], Generate(10 + i, prompt=prompt, sampling=GREEDY))[10 + i]
        )
    engine.close()
    model.close()


def test_a_request_alone_sends_the_other_sequences_home(tiny_files: dict[str, Path]) -> None:
    """Chains that sampled requests left stay attached for the next of their kind; a
    request admitted while nobody runs puts the greedy chain back everywhere, where
    the re-plans hold no one."""
    model, engine = engine_for(tiny_files["tiny"], True)
    other = replace(SEEDED, seed=8)
    answers(engine, Generate(1, prompt="Once upon", sampling=SEEDED),
            Generate(2, prompt="The cat", sampling=other))  # fmt: skip
    assert engine._graph.home == 2 and engine._graph.attached == 4
    answers(engine, Generate(3, prompt="In a land", sampling=GREEDY))
    assert engine._graph.home == 4
    engine.close()
    model.close()


def test_seeded_sampling_in_the_graph_is_reproducible(engines: dict[bool, Engine]) -> None:
    first = answers(engines[True], Generate(1, prompt="Once upon", sampling=SEEDED))
    again = answers(engines[True], Generate(2, prompt="Once upon", sampling=SEEDED))
    assert first[1] == again[2] and first[1]


def test_grammars_and_logprobs_beside_backend_streams(engines: dict[bool, Engine]) -> None:
    structured = Generate(1, prompt="JSON:", sampling=replace(GREEDY, ignore_eos=False),
                          grammar=json_grammar())  # fmt: skip
    scored = Generate(2, prompt="Once upon", sampling=replace(GREEDY, logprobs=2))
    plain = Generate(3, prompt="The cat", sampling=GREEDY)
    out = answers(engines[True], structured, scored, plain)
    json.loads(out[1])
    assert out[2] == answers(engines[False], replace(scored, id=4))[4]
    assert out[3] == answers(engines[False], replace(plain, id=5))[5]
