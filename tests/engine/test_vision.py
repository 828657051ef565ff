"""Images through the batching engine (`engine.vision`, `engine.image_slots`) with the
generated projector: an image's tokens count in the prompt, the slot's cache keeps
an image like a prefix of tokens, and other streams are not disturbed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import MARKER, Done, Event, Failed, Generate, Image, Piece, Sampling
from localllm.engine.vision import Projector, ProjectorError
from localllm.planner.settings import LoadSettings
from tests.factory import TINY, TINY_PROJECTOR, ModelSpec, ProjectorSpec, write_projector

GREEDY = Sampling(temperature=0, num_predict=12, repeat_penalty=1.0)
N = TINY_PROJECTOR.image_tokens


def image(seed: int, width: int = 48, height: int = 40) -> Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = pixels.tobytes()
    return Image(width, height, data, hashlib.sha256(data).hexdigest())


@pytest.fixture(scope="module")
def projector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("projector")
    return write_projector(TINY_PROJECTOR, folder / "mmproj.gguf", TINY)


@pytest.fixture(scope="module")
def model(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 256, n_seq_max=4, n_threads=2)
    m = LlamaModel([str(tiny_files["tiny"])], settings, ())
    yield m
    m.close()


@pytest.fixture
def engine(model: LlamaModel, projector_file: Path) -> Iterator[Engine]:
    e = Engine(model, projector=Projector(str(projector_file), model))
    yield e
    e.close()  # a second close does nothing


def run(engine: Engine, *requests: Generate) -> dict[int, list[Event]]:
    for r in requests:
        engine.submit(r)
    events: dict[int, list[Event]] = {r.id: [] for r in requests}
    while engine.busy:
        for event in engine.step():
            events[event.id].append(event)
    return events


def answer(events: list[Event]) -> tuple[str, Done]:
    done = events[-1]
    assert isinstance(done, Done), done
    return "".join(e.text for e in events if isinstance(e, Piece)), done


def ask(i: int, text: str, *images: Image, predict: int = 12) -> Generate:
    sampling = Sampling(temperature=0, num_predict=predict, repeat_penalty=1.0)
    return Generate(i, prompt=text, sampling=sampling, images=images)


def test_an_image_counts_as_its_tokens_and_is_encoded_once(engine: Engine) -> None:
    first = answer(run(engine, ask(1, f"{MARKER}What is this?", image(1)))[1])[1]
    text_only = answer(run(engine, ask(2, "What is this?"))[2])[1]
    assert first.image_tokens == N and first.encoded_images == 1
    assert first.prompt_tokens == text_only.prompt_tokens + N
    follow_up = ask(3, f"{MARKER}What is this? And that?", image(1))
    again = answer(run(engine, follow_up)[3])[1]
    assert again.encoded_images == 0  # the slot held the image: nothing to encode
    assert again.cached_tokens > N
    other = answer(run(engine, ask(4, f"{MARKER}What is this? And that?", image(2)))[4])[1]
    assert other.encoded_images == 1  # another image is not the cached one


def test_the_same_image_gives_the_same_answer_cached_or_not(
    engine: Engine, model: LlamaModel, projector_file: Path
) -> None:
    request = ask(1, f"Look: {MARKER} Say", image(3))
    fresh, _ = answer(run(engine, request)[1])
    cached_text, done = answer(run(engine, request)[1])
    assert done.encoded_images == 0 and cached_text == fresh
    engine.close()  # another engine's empty slots: encoded again, the same answer
    other = Engine(model, projector=Projector(str(projector_file), model))
    try:
        again, done = answer(run(other, request)[1])
    finally:
        other.close()
    assert done.encoded_images == 1 and again == fresh


def test_different_images_give_different_answers(engine: Engine) -> None:
    texts = {
        answer(run(engine, ask(i, f"{MARKER}Say", image(i), predict=24))[i])[0] for i in range(4)
    }
    assert len(texts) > 1  # the image reaches the model


def test_a_text_stream_goes_on_unchanged_beside_an_image(engine: Engine) -> None:
    alone, _ = answer(run(engine, ask(1, "Once upon a time", predict=32))[1])
    both = run(engine, ask(2, "Once upon a time", predict=32), ask(3, f"{MARKER} Say", image(5)))
    assert answer(both[2])[0] == alone
    assert answer(both[3])[1].encoded_images == 1


def test_two_images_in_one_prompt(engine: Engine) -> None:
    _, done = answer(run(engine, ask(1, f"{MARKER} and {MARKER}: alike?", image(6), image(7)))[1])
    assert done.image_tokens == 2 * N and done.encoded_images == 2


def test_an_image_that_does_not_fit_is_refused_with_the_numbers(engine: Engine) -> None:
    many = tuple(image(10 + i) for i in range(20))  # 20 x 16 tokens > a 256-token slot
    failed = run(engine, ask(1, MARKER * 20 + " Say", *many))[1][-1]
    assert isinstance(failed, Failed) and failed.status == 400
    assert "320 of them for images" in failed.message and "256" in failed.message


def test_bad_image_counts_and_places_are_refused(engine: Engine) -> None:
    few = run(engine, ask(1, f"{MARKER}{MARKER} Say", image(1)))[1][-1]
    assert isinstance(few, Failed) and few.status == 400 and "2 image places" in few.message
    last = run(engine, ask(2, f"Say {MARKER}", image(1)))[2][-1]
    assert isinstance(last, Failed) and "ends with an image" in last.message


def test_a_model_without_a_projector_refuses_images(model: LlamaModel) -> None:
    plain = Engine(model)
    try:
        failed = run(plain, ask(1, f"{MARKER} Say", image(1)))[1][-1]
    finally:
        plain.close()
    assert isinstance(failed, Failed) and failed.status == 400
    assert "no vision projector" in failed.message


def test_a_projector_for_another_width_is_refused(model: LlamaModel, tmp_path: Path) -> None:
    wrong = write_projector(ProjectorSpec(), tmp_path / "mmproj.gguf", ModelSpec(n_embd=32))
    with pytest.raises(ProjectorError, match="did not load"):
        Projector(str(wrong), model)
