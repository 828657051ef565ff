"""The batching engine on a real llama.cpp context: requests decoded together
give what they give alone, each with its own limits, and slots keep prefixes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.constraints.grammar import json_grammar
from localllm.engine.batch import Engine
from localllm.engine.chunking import CPU_TILE, ChunkSize
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Done, Embed, Embedded, Event, Failed, Generate, Piece, Sampling
from localllm.planner.settings import LoadSettings
from tests.factory import TINY_MAMBA, write_model

GREEDY = Sampling(temperature=0, num_predict=24, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def model(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 512, n_seq_max=4, n_threads=2)
    m = LlamaModel([str(tiny_files["tiny"])], settings, ())
    yield m
    m.close()


@pytest.fixture(params=[False, True], ids=["in-order", "overlapped"])
def engine(model: LlamaModel, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Both orders of a step: text worked out after the decode (a CPU's), or while
    the device computes the next (a GPU's; the same answers, a step later)."""
    e = Engine(model, overlap=request.param)
    yield e
    e.close()


def run(engine: Engine, *requests: Generate | Embed) -> dict[int, list[Event]]:
    """Submit all at once and step until every request has ended."""
    for r in requests:
        engine.submit(r)
    events: dict[int, list[Event]] = {r.id: [] for r in requests}
    while engine.busy:
        for event in engine.step():
            events[event.id].append(event)
    return events


def done(events: list[Event]) -> Done:
    assert isinstance(events[-1], Done), events[-1]
    return events[-1]


def text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Piece))


def ask(i: int, prompt: str, sampling: Sampling = GREEDY, **kw: object) -> Generate:
    return Generate(i, prompt=prompt, sampling=sampling, **kw)  # type: ignore[arg-type]


PROMPTS = ["Once upon a time", "The capital of", "def main():", "1, 2, 3, 4,"]


def test_requests_decoded_together_give_what_they_give_alone(
    engine: Engine, model: LlamaModel
) -> None:
    alone = [text(run(engine, ask(i, p))[i]) for i, p in enumerate(PROMPTS)]
    fresh = Engine(model)  # empty slots: every prompt is decoded again, in one batch
    try:
        together = run(fresh, *(ask(i, p) for i, p in enumerate(PROMPTS)))
    finally:
        fresh.close()
    assert [text(together[i]) for i in range(len(PROMPTS))] == alone
    assert all(done(together[i]).cached_tokens == 0 for i in range(len(PROMPTS)))
    assert all(done(together[i]).eval_tokens == 24 for i in range(len(PROMPTS)))


def test_each_request_keeps_its_own_limits_in_one_batch(engine: Engine) -> None:
    short = ask(1, "a", Sampling(temperature=0, num_predict=3))
    free = ask(2, "b", Sampling(temperature=0.9, seed=7, num_predict=40, ignore_eos=True))
    fmt = ask(3, "c", Sampling(temperature=0, num_predict=200), grammar=json_grammar())
    out = run(engine, short, free, fmt)
    assert done(out[1]).eval_tokens == 3 and done(out[1]).reason == "length"
    assert done(out[2]).eval_tokens == 40
    parsed = done(out[3])
    assert parsed.reason == "stop"
    json.loads(parsed.content)  # the grammar held in a shared batch


def test_more_requests_than_slots_wait_and_all_finish(engine: Engine) -> None:
    requests = [ask(i, f"request {i}") for i in range(7)]
    out = run(engine, *requests)
    assert [done(out[i]).eval_tokens for i in range(7)] == [24] * 7


def test_a_chat_continues_in_the_slot_that_holds_its_prefix(engine: Engine) -> None:
    first = [{"role": "system", "content": "be brief " * 20}, {"role": "user", "content": "hi"}]
    other = [{"role": "user", "content": "something else entirely " * 5}]
    a = done(run(engine, Generate(1, messages=tuple(first), sampling=GREEDY))[1])
    run(engine, Generate(2, messages=tuple(other), sampling=GREEDY))
    follow = (*first, {"role": "assistant", "content": a.content}, {"role": "user", "content": "?"})
    b = done(run(engine, Generate(3, messages=follow, sampling=GREEDY))[3])
    assert b.cached_tokens >= a.prompt_tokens  # the whole first turn, not recomputed
    c = done(run(engine, Generate(4, messages=tuple(first), sampling=GREEDY))[4])
    assert c.cached_tokens > 20  # the shared system prompt


def test_cancelling_one_leaves_the_others_intact(engine: Engine) -> None:
    alone = text(run(engine, ask(1, PROMPTS[0]))[1])
    for r in (ask(1, PROMPTS[0]), ask(2, PROMPTS[1])):
        engine.submit(r)
    events: dict[int, list[Event]] = {1: [], 2: []}
    for event in engine.step() + engine.step():
        events[event.id].append(event)
    cancelled = engine.cancel(2)
    assert isinstance(cancelled, Failed) and cancelled.status == 499
    while engine.busy:
        for event in engine.step():
            events[event.id].append(event)
    assert text(events[1]) == alone and done(events[1]).eval_tokens == 24
    assert not any(isinstance(e, Done) for e in events[2])
    assert engine.cancel(99) is None


def test_an_embedding_between_steps_does_not_disturb_generation(engine: Engine) -> None:
    alone = text(run(engine, ask(1, PROMPTS[2]))[1])
    out = run(engine, ask(1, PROMPTS[2]), Embed(2, ("some text", "more")))
    assert text(out[1]) == alone
    embedded = out[2][-1]
    assert isinstance(embedded, Embedded) and len(embedded.vectors) == 2


def test_a_prompt_over_the_slot_context_fails_alone(engine: Engine) -> None:
    out = run(engine, ask(1, "word " * 600), ask(2, PROMPTS[0]))
    failed = out[1][-1]
    assert isinstance(failed, Failed) and failed.status == 400 and "512" in failed.message
    assert done(out[2]).eval_tokens == 24


def test_recurrent_models_batch_too(tmp_path: Path) -> None:
    path = write_model(TINY_MAMBA, tmp_path / "mamba.gguf")
    settings = LoadSettings(n_gpu_layers=0, n_ctx=2 * 256, n_seq_max=2, n_threads=2)
    m = LlamaModel([str(path)], settings, ())
    engine = Engine(m)
    try:
        alone = [text(run(engine, ask(i, p))[i]) for i, p in enumerate(PROMPTS[:2])]
        together = run(engine, *(ask(i + 10, p) for i, p in enumerate(PROMPTS[:2])))
        assert [text(together[i + 10]) for i in range(2)] == alone
    finally:
        engine.close()
        m.close()


def test_a_grammar_that_allows_no_token_ends_its_request_alone(engine: Engine) -> None:
    # Every end token banned after a complete answer: llama.cpp's own sampler would
    # throw, which ends the process; the guarded draw ends this request with a 400.
    stuck = ask(
        1, "x", Sampling(temperature=0, num_predict=20, ignore_eos=True), grammar='root ::= "a"'
    )
    drawn = ask(2, "y", Sampling(temperature=0.7, seed=3, num_predict=20, ignore_eos=True),
                grammar='root ::= "ab"')  # fmt: skip
    free = ask(3, PROMPTS[0])
    alone = text(run(engine, ask(3, PROMPTS[0]))[3])
    out = run(engine, stuck, drawn, free)
    assert text(out[1]) == "a" and text(out[2]) == "ab"
    for rid in (1, 2):
        failed = out[rid][-1]
        assert isinstance(failed, Failed) and failed.status == 400, failed
        assert "allows no token" in failed.message
    assert text(out[3]) == alone and done(out[3]).eval_tokens == 24


def test_a_template_that_raises_fails_its_request_not_the_engine(engine: Engine) -> None:
    broken = Generate(
        1,
        messages=({"role": "user", "content": "hi"},),
        template="{{ messages[0]['content'] / 0 }}",  # a TypeError, not a Jinja error
        sampling=GREEDY,
    )
    out = run(engine, broken, ask(2, PROMPTS[1]))
    failed = out[1][-1]
    assert isinstance(failed, Failed) and "TypeError" in failed.message
    assert done(out[2]).eval_tokens == 24


def test_waiting_prompts_share_one_budget_beside_a_generating_stream(model: LlamaModel) -> None:
    """Two prompts arriving while a stream generates take the step's prompt budget
    together, not one each: the stream waits for every prompt token of the step."""
    steps: list[tuple[int, int]] = []

    class Recording(ChunkSize):
        """A budget the clock does not move (on any machine), and what each step took."""

        def update(self, tokens: int, seconds: float, beside: bool = True) -> None:
            if tokens and beside:  # (0: a step of the stream alone)
                steps.append((tokens, self.tokens))

    engine = Engine(model)
    engine._chunk = Recording(300)
    try:
        engine.submit(ask(0, "Once upon a time", Sampling(temperature=0, num_predict=40)))
        engine.step()  # its prompt; it generates from here on
        long = "one two three " * 20
        assert 300 < len(model.tokenize(long, add_special=True)) < 450
        engine.submit(ask(1, long))
        engine.submit(ask(2, "and " + long))
        ended: set[int] = set()
        while engine.busy:
            ended |= {e.id for e in engine.step() if isinstance(e, Done)}
    finally:
        engine.close()
    assert ended == {0, 1, 2}
    assert steps and all(taken <= budget for taken, budget in steps)
    assert sum(taken for taken, _ in steps) > 600  # both prompts went in beside it
    assert len(steps) >= 3  # 300 tokens a step at most: three steps at least


def test_short_prompts_arriving_together_start_together_beside_a_stream(
    model: LlamaModel,
) -> None:
    """Three short prompts arriving while a stream generates (every slot taken) all go
    in at the next step, though together they are more than the budget: each is no
    longer than a chunk."""
    steps: list[int] = []

    class Recording(ChunkSize):
        def update(self, tokens: int, seconds: float, beside: bool = True) -> None:
            if tokens and beside:
                steps.append(tokens)

    engine = Engine(model)
    engine._chunk = Recording(300, 200)  # a micro-batch of 200
    engine._chunk.tokens = 48  # and a chunk of 48 the clock does not move
    prompts = [f"{p} and then" for p in PROMPTS[:3]]
    sizes = [len(model.tokenize(p, add_special=True)) for p in prompts]
    assert max(sizes) <= 48 < sum(sizes)
    try:
        engine.submit(ask(0, "Once upon a time", Sampling(temperature=0, num_predict=40)))
        engine.step()
        for i, prompt in enumerate(prompts, 1):
            engine.submit(ask(i, prompt, Sampling(temperature=0, num_predict=4)))
        while engine.busy:
            engine.step()
    finally:
        engine.close()
    assert steps == [sum(sizes)]  # one step beside the stream took all three


def test_requests_joining_running_ones_take_the_slots_next_to_them(model: LlamaModel) -> None:
    """Slots 0 and 2 hold older conversations (least recently used: 0, then 2, then 1
    and 3): a request alone takes slot 0, and one joining it slot 1, its neighbour,
    not slot 2 (two passes of the weights a step)."""
    engine = Engine(model)
    for seq, used in ((0, 1.0), (1, 3.0), (2, 2.0), (3, 4.0)):
        engine.slots[seq].last_used = used
    engine.submit(ask(1, PROMPTS[0]))
    engine.step()
    engine.submit(ask(2, PROMPTS[1]))
    engine.step()
    taken = {s.job.id: s.seq for s in engine.slots if s.job is not None}
    assert taken == {1: 0, 2: 1}
    while engine.busy:
        engine.step()
    engine.close()


def test_on_the_cpu_a_prompt_beside_a_stream_goes_in_whole_tiles(model: LlamaModel) -> None:
    """The CPU's flash attention takes few rows of a sequence one by one (`CPU_TILE`):
    a prompt's share of a step beside a generating stream is whole tiles and the one
    token that rides with the stream, until what is left fits."""
    taken: list[int] = []

    class Recording(ChunkSize):
        def update(self, tokens: int, seconds: float, beside: bool = True) -> None:
            if tokens and beside:  # the clock moves nothing (0: the stream alone)
                taken.append(tokens)

    engine = Engine(model)
    assert engine._chunk.tile == CPU_TILE  # no GPU layers, flash attention on
    engine._chunk = Recording(150, tile=CPU_TILE)
    try:
        engine.submit(ask(0, "Once upon a time", Sampling(temperature=0, num_predict=40)))
        engine.step()
        long = "one two three " * 20
        n = len(model.tokenize(long, add_special=True))
        assert 300 < n < 450
        engine.submit(ask(1, long))
        ended: set[int] = set()
        while engine.busy:
            ended |= {e.id for e in engine.step() if isinstance(e, Done)}
    finally:
        engine.close()
    assert ended == {0, 1}
    *cut, last = taken
    assert cut and all(t == 2 * CPU_TILE + 1 for t in cut)  # of 150 rows: 2 tiles and one
    assert sum(taken) == n and last <= 150 + CPU_TILE
