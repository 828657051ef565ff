"""Sampling inside llama.cpp's graph (`LoadSettings.backend_sampling`), here on the CPU
backend: greedy answers are the same as the CPU chain's at any concurrency, seeded
ones reproducible, and requests that need the logits (grammars, logprobs) still get
them beside the others."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def test_greedy_is_the_same_in_the_graph_at_any_concurrency(engines: dict[bool, Engine]) -> None:
    prompts = ["Once upon", "The cat", "In a land", "Hello"]
    alone = {i: answers(engines[False], Generate(i, prompt=p, sampling=GREEDY))[i]
             for i, p in enumerate(prompts)}  # fmt: skip
    together = answers(engines[True], *(Generate(i, prompt=p, sampling=GREEDY)
                                        for i, p in enumerate(prompts)))  # fmt: skip
    assert together == alone


def test_greedy_rows_of_a_busy_batch_are_the_same_off_the_host_logits(
    engines: dict[bool, Engine],
) -> None:
    """More streams than `GRAPH_GREEDY_UP_TO`: greedy ones are read off the logits
    (`engine.greedy`) beside others still sampled in the graph."""
    prompts = ["Once upon", "The cat", "In a land", "Hello", "ab", "1, 2"]
    alone = {i: answers(engines[False], Generate(i, prompt=p, sampling=GREEDY))[i]
             for i, p in enumerate(prompts)}  # fmt: skip
    seeded = Generate(99, prompt="Once upon", sampling=SEEDED)
    expected = answers(engines[True], seeded)[99]
    together = answers(engines[True], seeded, *(Generate(i, prompt=p, sampling=GREEDY)
                                                for i, p in enumerate(prompts)))  # fmt: skip
    assert together.pop(99) == expected
    assert together == alone


def test_a_greedy_request_joining_others_changes_no_graph_sampler(
    tiny_files: dict[str, Path], engines: dict[bool, Engine]
) -> None:
    """Attaching or detaching a chain makes llama.cpp plan its graph again, which holds
    every running stream for that step: a plain greedy request admitted beside others
    leaves its sequence as it is (here read off the host logits), same answer."""
    model, engine = engine_for(tiny_files["tiny"], True)
    assert engine._graph.changes == 4  # the context's own chains, detached at the start
    texts = {1: "", 2: ""}
    engine.submit(Generate(1, prompt="Once upon", sampling=GREEDY))
    steps = 0
    while engine.busy:
        if steps == 2:
            attached = engine._graph.changes  # the first one's chain, attached alone
            engine.submit(Generate(2, prompt="The cat", sampling=GREEDY))
        for event in engine.step():
            if isinstance(event, Piece):
                texts[event.id] += event.text
        steps += 1
    assert attached == 5 and engine._graph.changes == attached
    for i, prompt in ((1, "Once upon"), (2, "The cat")):
        assert (
            texts[i]
            == answers(engines[False], Generate(10 + i, prompt=prompt, sampling=GREEDY))[10 + i]
        )
    engine.close()
    model.close()


def test_a_request_alone_leaves_only_its_own_chain_attached(tiny_files: dict[str, Path]) -> None:
    """An attached chain is in every decode's graph, its sequence idle or not: a request
    admitted while nobody runs drops the chains earlier requests left."""
    from dataclasses import replace

    model, engine = engine_for(tiny_files["tiny"], True)
    other = replace(SEEDED, seed=8)
    answers(engine, Generate(1, prompt="Once upon", sampling=SEEDED),
            Generate(2, prompt="The cat", sampling=other))  # fmt: skip
    assert engine._graph.attached == 2  # sampled: in the graph, whoever else ran
    answers(engine, Generate(3, prompt="In a land", sampling=GREEDY))
    assert engine._graph.attached == 1
    engine.close()
    model.close()


def test_seeded_sampling_in_the_graph_is_reproducible(engines: dict[bool, Engine]) -> None:
    first = answers(engines[True], Generate(1, prompt="Once upon", sampling=SEEDED))
    again = answers(engines[True], Generate(2, prompt="Once upon", sampling=SEEDED))
    assert first[1] == again[2] and first[1]


def test_grammars_and_logprobs_beside_backend_streams(engines: dict[bool, Engine]) -> None:
    from dataclasses import replace

    structured = Generate(1, prompt="JSON:", sampling=replace(GREEDY, ignore_eos=False),
                          grammar=json_grammar())  # fmt: skip
    scored = Generate(2, prompt="Once upon", sampling=replace(GREEDY, logprobs=2))
    plain = Generate(3, prompt="The cat", sampling=GREEDY)
    out = answers(engines[True], structured, scored, plain)
    json.loads(out[1])
    assert out[2] == answers(engines[False], replace(scored, id=4))[4]
    assert out[3] == answers(engines[False], replace(plain, id=5))[5]
