"""Ollama's `shift`: an answer that reaches the end of its slot drops the older half of
its context (after BOS and `num_keep`) and goes on; without it, it ends "length"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings

pytestmark = pytest.mark.slow

LONG = Sampling(temperature=0, num_predict=700, repeat_penalty=1.0, ignore_eos=True)


@pytest.fixture(scope="module")
def engine(tiny_files: dict[str, Path]) -> Iterator[Engine]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=128, n_seq_max=1, n_threads=2)
    model = LlamaModel([str(tiny_files["tiny"])], settings, ())
    e = Engine(model)
    yield e
    e.close()
    model.close()


def answer(engine: Engine, request: Generate) -> tuple[str, Done]:
    engine.submit(request)
    text, done = "", None
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                text += event.text
            elif isinstance(event, Done):
                done = event
    assert done is not None
    return text, done


def test_a_shifting_answer_goes_past_the_end_of_its_slot(engine: Engine) -> None:
    plain, stopped = answer(engine, Generate(1, prompt="Once upon", sampling=LONG))
    assert engine.n_ctx_slot < 700
    assert stopped.reason == "length" and stopped.eval_tokens < engine.n_ctx_slot
    shifted, done = answer(engine, Generate(2, prompt="Once upon", sampling=LONG, shift=True))
    assert done.reason == "length" and done.eval_tokens == 700  # num_predict, not the slot
    # Greedy: the same answer until the first shift changed what the model sees.
    assert shifted.startswith(plain[: len(plain) // 2])
    again, _ = answer(engine, Generate(3, prompt="Once upon", sampling=LONG, shift=True))
    assert again == shifted
