"""Prompt lookup (localllm/engine/speculation.py): guesses from the text itself, kept
only where the model agrees, so greedy answers are the same with and without it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from localllm.engine.batch import Engine
from localllm.engine.model import LlamaModel
from localllm.engine.profile import StepProfile
from localllm.engine.protocol import Done, Generate, Piece, Sampling, TokenLogprob
from localllm.engine.speculation import AlwaysGuess, Odds, Payoff, PromptLookup, speculates
from localllm.planner.settings import LoadSettings
from tests.engine.agreement import agreed

GREEDY = Sampling(temperature=0, num_predict=120, repeat_penalty=1.0, ignore_eos=True)


def test_guesses_continue_the_latest_match() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3])
    assert lookup.draft(3) == [4, 5, 9]  # "2 3" was followed by 4 5 9
    lookup.push(7)
    assert lookup.draft(3) == []  # nothing ever followed "... 3 7", "3 7" or "7"
    lookup.push(1)
    assert lookup.draft(2) == [2, 3]


def test_a_long_prompt_is_indexed_a_part_per_draft_nearest_first() -> None:
    """At most `INDEX_PER_DRAFT` prompt positions a draft (58 ms of Python for a 32k
    prompt at once held every stream), from its end back, new tokens first: once all
    is in, the index is the one built in one go, the latest occurrence of each n-gram."""
    import random

    from localllm.engine.speculation import N_MAX

    rng = random.Random(5)
    prompt = [rng.randrange(6) for _ in range(3000)]
    lookup = PromptLookup(prompt)
    lookup.push(9)
    lookup.push(4)
    lookup._catch_up(budget=1000)
    assert lookup._low == 2000 and lookup._high == 3002
    for _ in range(4):
        lookup.push(rng.randrange(6))
        lookup._catch_up(budget=1000)
    whole: dict[tuple[int, ...], int] = {}
    tokens = lookup.tokens
    for p in range(1, len(tokens)):
        for n in range(1, min(N_MAX, p) + 1):
            whole[tuple(tokens[p - n : p])] = p
    assert lookup._low == 1 and lookup._index == whole


def test_failing_guesses_pause_and_agreeing_ones_grow() -> None:
    lookup = PromptLookup([1, 2, 1, 2, 1, 2])
    first = lookup.k
    lookup.update(4, 4)
    assert lookup.k == 2 * first
    for _ in range(3):
        lookup.update(4, 0)
    assert lookup.draft(4) == []  # paused after a run of rejections


def test_pauses_in_a_row_grow_until_a_guess_is_agreed() -> None:
    from localllm.engine.speculation import PAUSE_MAX, PAUSE_STEPS

    lookup = PromptLookup([1, 2, 1, 2, 1, 2])

    def pause_after_rejections() -> int:
        while lookup.draft(4):
            lookup.update(4, 0)
        steps = 0
        while not lookup.draft(4):
            steps += 1
        return steps + 1

    pauses = [pause_after_rejections() for _ in range(7)]
    assert pauses == [PAUSE_STEPS << i for i in range(5)] + [PAUSE_MAX, PAUSE_MAX]
    lookup.update(4, 4)  # a guess agreed in full: the next pause is short again
    assert pause_after_rejections() == PAUSE_STEPS


def test_a_new_request_starts_from_the_engines_odds() -> None:
    from localllm.engine.speculation import PAUSE_STEPS

    odds = Odds()
    first = PromptLookup([1, 2, 1, 2, 1, 2], odds=odds)
    while first.draft(4):  # an answer unlike its prompt: guesses fail until it pauses
        first.update(4, 0)
    failed_guesses = first.pace.drafted // 4
    assert failed_guesses > 1 and odds.pauses == 1

    second = PromptLookup([1, 2, 1, 2, 1, 2], odds=odds)
    assert second.draft(4)  # still one look: its own text may agree
    second.update(4, 0)
    assert second.draft(4) == []  # one failed guess, and a pause as long as a second one
    steps = 1
    while not second.draft(4):
        steps += 1
    assert steps == PAUSE_STEPS << 1 and odds.pauses == 2

    agreeing = PromptLookup([1, 2, 1, 2, 1, 2], odds=odds)
    agreeing.update(4, 4)  # its guesses agree: the engine's pauses start over
    assert odds.pauses == 0 and agreeing.k == 8
    fresh = PromptLookup([1, 2, 1, 2, 1, 2], odds=odds)
    fresh.update(4, 0)
    assert fresh.draft(4)  # one failed guess no longer pauses it


def test_all_but_grammars_and_logprobs_can_speculate() -> None:
    assert speculates(Generate(0, prompt="x", sampling=GREEDY))
    assert speculates(Generate(0, prompt="x", sampling=replace(GREEDY, temperature=0.5)))
    assert speculates(Generate(0, prompt="x", sampling=replace(GREEDY, repeat_penalty=1.1)))
    assert not speculates(Generate(0, prompt="x", sampling=GREEDY, grammar='root ::= "a"'))
    assert not speculates(Generate(0, prompt="x", sampling=replace(GREEDY, logprobs=2)))


@pytest.fixture(scope="module", params=[False, True], ids=["in-order", "overlapped"])
def engine(tiny_files: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Engine]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 1024, n_seq_max=4, n_threads=2)
    model = LlamaModel([str(tiny_files["tiny"])], settings, ())
    e = Engine(model, payoff=AlwaysGuess(), overlap=request.param)
    yield e
    e.close()
    model.close()


def run_logprobs(engine: Engine, request: Generate) -> list[TokenLogprob]:
    """The answer's tokens with their logprobs (the request asks for some)."""
    engine.submit(request)
    tokens: list[TokenLogprob] = []
    while engine.busy:
        tokens += (t for e in engine.step() if isinstance(e, Piece) for t in e.logprobs)
    return tokens


def run(engine: Engine, *requests: Generate) -> dict[int, tuple[str, Done]]:
    for r in requests:
        engine.submit(r)
    texts = {r.id: "" for r in requests}
    done: dict[int, Done] = {}
    while engine.busy:
        for event in engine.step():
            if isinstance(event, Piece):
                texts[event.id] += event.text
            elif isinstance(event, Done):
                done[event.id] = event
    return {i: (texts[i], done[i]) for i in texts}


@pytest.mark.slow
def test_greedy_answers_are_the_same_with_and_without_guessing(engine: Engine) -> None:
    prompts = ["Once upon a time there was", "a b c a b c a b", "The cat sat. The cat"]
    off = replace(GREEDY, prompt_lookup=False)
    alone = {p: run_logprobs(engine, Generate(1, prompt=p, sampling=replace(off, logprobs=2)))
             for p in prompts}  # fmt: skip
    for prompt in prompts:
        engine.profile = StepProfile()
        plain = run(engine, Generate(1, prompt=prompt, sampling=off))[1]
        steps_plain, engine.profile = engine.profile.steps, StepProfile()
        guessed = run(engine, Generate(2, prompt=prompt, sampling=GREEDY))[2]
        agreed(alone[prompt], guessed[0])
        assert guessed[1].eval_tokens == plain[1].eval_tokens == 120
        assert engine.profile.steps <= steps_plain  # guesses the model agreed with: fewer passes
    engine.profile = None
    together = run(engine, *(Generate(10 + i, prompt=p, sampling=GREEDY)
                             for i, p in enumerate(prompts)))  # fmt: skip
    for i, prompt in enumerate(prompts):
        agreed(alone[prompt], together[10 + i][0])


@pytest.mark.slow
def test_penalties_see_only_the_tokens_taken(engine: Engine) -> None:
    """A penalised greedy answer guesses too: its chain samples only along the tokens
    it takes, so the answer is the one it gives token by token."""
    prompt = "a b c a b c a b c a b"
    penalised = replace(GREEDY, repeat_penalty=1.3, repeat_last_n=16)
    engine.profile = StepProfile()
    guessed = run(engine, Generate(1, prompt=prompt, sampling=penalised))[1]
    drafted, engine.profile = engine.profile.drafted, None
    plain = replace(penalised, prompt_lookup=False, logprobs=2)
    agreed(run_logprobs(engine, Generate(2, prompt=prompt, sampling=plain)), guessed[0])
    assert drafted > 0


def test_sampled_answers_do_not_guess_from_the_prompt(engine: Engine) -> None:
    engine.profile = StepProfile()
    done = run(engine, Generate(1, prompt="a b a b a b", sampling=replace(GREEDY, temperature=1)))
    assert engine.profile.drafted == 0 and done[1][1].drafted == 0
    engine.profile = None


def test_the_batch_guesses_only_while_it_measures_faster() -> None:
    payoff = Payoff(explore_every=4)
    settle = Payoff.SETTLE

    def run(steps: int, guessing: float, plain: float = 100.0) -> list[bool]:
        """Each step's choice, the steps giving these tokens per second."""
        choices = []
        for _ in range(steps):
            guessed = payoff.guess(1)
            payoff.record(1, guessed, 1, 1 / (guessing if guessed else plain))
            choices.append(guessed)
        return choices

    # nothing measured: each way once, a step after the `settle` that pay for the change
    assert run(2 * (settle + 1), 110) == [False] * (settle + 1) + [True] * (settle + 1)
    # guessing wins; a look back at plain steps after 4 steps, then 8, 16...
    runs = [(way, len(list(steps))) for way, steps in itertools.groupby(run(60, 110))]
    assert [n for way, n in runs if not way] == [settle + 1] * 3  # each look counts one
    assert [n for way, n in runs[1:-1] if way] == [8 - 1, 16 - 1]
    # the guesses stop paying: within a few looks the batch stops guessing
    later = run(200, 20)
    assert not any(later[-50:])
    assert not payoff.guess(4)  # another number of streams is measured on its own


def test_the_steps_that_change_the_way_are_not_counted() -> None:
    """A change of way (or of streams, or a step of prompt tokens between) makes the
    next steps slow whichever way wins (a GPU captures its graph again): counted, they
    made the first look at either way lose."""
    payoff = Payoff(explore_every=4)
    choices: list[bool] = []
    for step in range(200):
        guessed = payoff.guess(1)
        changed = not choices or choices[-1] != guessed or step == 100
        if step == 100:
            payoff.interrupt()  # a prompt came in: its step is no way's
        rate = 10.0 if changed else (150.0 if guessed else 100.0)
        payoff.record(1, guessed, 1, 1 / rate)
        choices.append(guessed)
    assert sum(choices[-50:]) >= 45  # guessing, with a look back at plain now and then


def test_a_way_found_far_behind_is_looked_at_rarely() -> None:
    payoff = Payoff(explore_every=4)
    choices = []
    for _ in range(3000):
        guessed = payoff.guess(1)
        payoff.record(1, guessed, 1, 1 / (50.0 if guessed else 100.0))
        choices.append(guessed)
    starts = [i for i, g in enumerate(choices) if g and not choices[i - 1]]
    # each way once, the first look after 4 steps; then the longest interval at once
    assert starts[:2] == [Payoff.SETTLE + 1, 10]
    # (from the start of one look to the next: the interval after its counted step)
    assert {b - a for a, b in itertools.pairwise(starts[1:])} == {
        Payoff.EXPLORE_MAX + Payoff.SETTLE
    }


@pytest.mark.parametrize("full", [False, True])
def test_a_sliding_window_model_guesses_with_a_full_cache(tmp_path: Path, full: bool) -> None:
    """Gemma-style layers keep a window-sized cache, which cannot be cut back to drop
    rejected guesses: such a model answers without guessing. With `swa_full` they keep
    every cell, and the guesses are made and rolled back exactly, past the window too.
    (Flash attention off: llama.cpp's CPU flash attention gives a single-token pass
    other last bits than a batch on these layers, guesses or not.)"""
    from tests.factory import TINY_SWA, write_model

    path = str(write_model(TINY_SWA, tmp_path / "swa.gguf"))
    sampling = replace(GREEDY, num_predict=300)  # the window is 128 tokens
    settings = LoadSettings(n_gpu_layers=0, n_ctx=2048, n_seq_max=1, n_threads=2,
                            flash_attn=False, swa_full=full)  # fmt: skip
    model = LlamaModel([path], settings, ())
    assert model.has_swa
    prompt = "a b c d a b c d a b c d a b"
    reference = Engine(model, StepProfile(), payoff=AlwaysGuess())
    plain = replace(sampling, prompt_lookup=False, logprobs=2)
    tokens = run_logprobs(reference, Generate(1, prompt=prompt, sampling=plain))
    reference.close()
    profile = StepProfile()
    engine = Engine(model, profile, payoff=AlwaysGuess())
    guessed = run(
        engine, Generate(1, prompt=prompt, sampling=replace(sampling, prompt_lookup=True))
    )
    engine.close()
    model.close()
    agreed(tokens, guessed[1][0])  # the same answer, but where two tokens tie
    assert (profile.drafted > 0) == full


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [False, True], ids=["in-order", "overlapped"])
def test_streams_guessing_different_lengths_are_checked_as_one(
    tiny_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    """On a GPU (the overlapped step), streams sampled by the graph's argmax have their
    guesses padded to one length, so llama.cpp checks them in one pass: the answers
    stay the model's own."""
    from localllm.engine import guesses

    padded: list[dict[int, int]] = []

    def pad(generating: list[Any], drafts: dict[int, list[int]], n_ctx: int) -> dict[int, int]:
        own = guesses_pad(generating, drafts, n_ctx)
        padded.append(own)
        if own:
            assert len({len(d) for d in drafts.values()}) == 1
            assert set(drafts) == {s.seq for s in generating}
        return own

    guesses_pad = guesses.pad
    monkeypatch.setattr(guesses, "pad", pad)
    settings = LoadSettings(n_gpu_layers=0, n_ctx=4 * 1024, n_seq_max=4, n_threads=2,
                            backend_sampling=True)  # fmt: skip
    model = LlamaModel([str(tiny_files["tiny"])], settings, ())
    engine = Engine(model, payoff=AlwaysGuess(), overlap=overlap)
    prompts = ["a b c a b c a b", "Once upon a time there was"]  # prompt lookup: up to 2
    off = replace(GREEDY, prompt_lookup=False)
    alone = {p: run_logprobs(engine, Generate(1, prompt=p, sampling=replace(off, logprobs=2)))
             for p in prompts}  # fmt: skip
    together = run(engine, *(Generate(10 + i, prompt=p, sampling=GREEDY)
                             for i, p in enumerate(prompts)))  # fmt: skip
    for i, prompt in enumerate(prompts):
        agreed(alone[prompt], together[10 + i][0])
        assert together[10 + i][1].eval_tokens == 120
    assert any(padded) == overlap  # only where the step overlaps a device's work
    engine.close()
    model.close()
