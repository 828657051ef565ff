"""LoRA adapters chosen per request: the base model's answer without one, another with
one, and requests of different adapters in one batch each as they are alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Adapter, Failed, Generate, Sampling
from localllm.planner.settings import LoadSettings
from tests.engine.test_batch import run, text
from tests.factory import TINY, write_lora

GREEDY = Sampling(temperature=0, num_predict=16, repeat_penalty=1.0, ignore_eos=True)
SETTINGS = LoadSettings(n_gpu_layers=0, n_ctx=4 * 256, n_seq_max=4, n_threads=2)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("lora")
    return [write_lora(TINY, folder / f"a{i}.gguf", seed=i, strength=2.0) for i in range(2)]


@pytest.fixture(scope="module")
def base(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    m = LlamaModel([str(tiny_files["tiny"])], SETTINGS, ())
    yield m
    m.close()


@pytest.fixture(scope="module")
def tuned(tiny_files: dict[str, Path], adapters: list[Path]) -> Iterator[LlamaModel]:
    m = LlamaModel([str(tiny_files["tiny"])], SETTINGS, tuple(Adapter(str(a)) for a in adapters))
    yield m
    m.close()


def answer(model: LlamaModel, *requests: Generate) -> list[str]:
    engine = Engine(model)
    try:
        out = run(engine, *requests)
        return [text(out[r.id]) for r in requests]
    finally:
        engine.close()


def ask(i: int, lora: tuple[tuple[int, float], ...] | None) -> Generate:
    return Generate(i, prompt="Once upon a time", sampling=GREEDY, lora=lora)


def test_no_adapter_is_the_base_and_an_adapter_changes_the_answer(
    base: LlamaModel, tuned: LlamaModel
) -> None:
    (plain,) = answer(base, ask(1, None))
    none, first, second, both = answer(tuned, ask(1, ()), ask(2, ((0, 1.0),)),
                                       ask(3, ((1, 1.0),)), ask(4, None))  # fmt: skip
    assert none == plain
    assert len({plain, first, second, both}) == 4  # each set of adapters its own answer
    (again,) = answer(tuned, ask(5, ((0, 0.0),)))  # a scale of 0 is no adapter
    assert again == plain


def test_requests_of_different_adapters_batched_as_alone(tuned: LlamaModel) -> None:
    sets: list[tuple[tuple[int, float], ...]] = [((0, 1.0),), (), ((0, 1.0),), ((1, 0.5),)]
    alone = [answer(tuned, ask(i, lora))[0] for i, lora in enumerate(sets)]
    together = answer(tuned, *(ask(i, lora) for i, lora in enumerate(sets)))
    assert together == alone


def test_an_unknown_adapter_is_a_400_naming_it(tuned: LlamaModel) -> None:
    engine = Engine(tuned)
    try:
        out = run(engine, ask(1, ((0, 1.0), (2, 1.0))))
    finally:
        engine.close()
    failed = out[1][-1]
    assert isinstance(failed, Failed) and failed.status == 400
    assert failed.message.startswith("lora.1.id: 2 is not an adapter of this model (it has 2")
