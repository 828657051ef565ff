"""A draft model (localllm/engine/draft.py) guesses for its target in the same worker:
greedy answers stay what the target alone gives (but where two tokens tie: see
tests/engine/agreement.py), sampled ones are
reproducible with a seed, and a draft that cannot guess for the target is refused."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localllm.engine.batch import Engine
from localllm.engine.draft import DraftModel, IncompatibleDraft, top_of
from localllm.engine.model import LlamaModel
from localllm.engine.protocol import Generate, Sampling, TokenLogprob
from localllm.engine.speculation import STEADY_LENGTH, AlwaysGuess, Payoff
from localllm.planner.settings import LoadSettings
from tests.engine.agreement import agreed
from tests.engine.test_speculation import run, run_logprobs
from tests.factory import TINY_MAMBA, ModelSpec, write_model

GREEDY = Sampling(temperature=0, num_predict=80, repeat_penalty=1.0, ignore_eos=True)
SETTINGS = LoadSettings(n_gpu_layers=0, n_ctx=4 * 1024, n_seq_max=4, n_threads=2)
TARGET = ModelSpec(name="target", n_layer=4)
DRAFT = ModelSpec(name="draft", n_layer=1)
AGREEING = {"attn_output.weight": 10, "ffn_down.weight": 10, "output.weight": 50,
            "token_embd.weight": 50}  # fmt: skip
"""Layers that add little to the embeddings both share: the one-layer draft agrees with
the four-layer target on most tokens, not all (`write_model(per_tensor=True)`)."""
PROMPTS = ["Once upon a time there was", "a b c a b c a b", "The cat sat. The cat"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("draft-pair")
    return {
        "target": write_model(TARGET, folder / "target.gguf", np.float16, 3, 0, AGREEING, True),
        "draft": write_model(DRAFT, folder / "draft.gguf", np.float16, 3, 0, AGREEING, True),
    }


@pytest.fixture(scope="module")
def target(pair: dict[str, Path]) -> Iterator[LlamaModel]:
    model = LlamaModel([str(pair["target"])], SETTINGS, ())
    yield model
    model.close()


OVERLAP = False
"""The step's order the tests run in (`order`): in order, or overlapped as on a GPU."""


@pytest.fixture(autouse=True, params=[False, True], ids=["in-order", "overlapped"])
def order(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "OVERLAP", request.param)


def engine_with(target: LlamaModel, draft_path: Path | None) -> Engine:
    draft = None
    if draft_path is not None:
        draft = DraftModel(LlamaModel([str(draft_path)], SETTINGS, ()), target)
    return Engine(target, None, draft, AlwaysGuess(), overlap=OVERLAP)


def clear(engine: Engine) -> None:
    import llama_cpp

    for slot in engine.slots:
        slot.cached.clear()
        llama_cpp.llama_memory_seq_rm(engine.model.memory, slot.seq, -1, -1)


@pytest.fixture(scope="module")
def alone(target: LlamaModel) -> dict[str, list[TokenLogprob]]:
    """Each prompt's greedy answer from the target alone, without any guessing, with the
    margins by which its tokens were chosen (`tests.engine.agreement`)."""
    engine = Engine(target)
    off = replace(GREEDY, prompt_lookup=False, logprobs=2)
    answers = {p: run_logprobs(engine, Generate(1, prompt=p, sampling=off)) for p in PROMPTS}
    engine.draft = None
    return answers


def test_greedy_answers_are_the_targets_own(
    target: LlamaModel, pair: dict[str, Path], alone: dict[str, list[TokenLogprob]]
) -> None:
    engine = engine_with(target, pair["draft"])
    drafted = accepted = 0
    for prompt in PROMPTS:
        clear(engine)
        text, done = run(engine, Generate(1, prompt=prompt, sampling=GREEDY))[1]
        agreed(alone[prompt], text)
        assert done.eval_tokens == 80
        drafted, accepted = drafted + done.drafted, accepted + done.accepted
    assert 0 < accepted < drafted  # guesses were taken and rejected: both caches rolled back
    together = run(engine, *(Generate(10 + i, prompt=p, sampling=GREEDY)
                             for i, p in enumerate(PROMPTS)))  # fmt: skip
    for i, prompt in enumerate(PROMPTS):
        agreed(alone[prompt], together[10 + i][0])
    engine.draft.close()  # type: ignore[union-attr]


def test_the_target_as_its_own_draft_agrees_on_everything(
    target: LlamaModel, pair: dict[str, Path], alone: dict[str, list[TokenLogprob]]
) -> None:
    """The overhead case: every guess is taken, so every pass yields several tokens."""
    engine = engine_with(target, pair["target"])
    clear(engine)
    text, done = run(engine, Generate(1, prompt=PROMPTS[0], sampling=GREEDY))[1]
    agreed(alone[PROMPTS[0]], text)
    assert done.accepted == done.drafted > 0
    assert done.passes < done.eval_tokens / 2
    engine.draft.close()  # type: ignore[union-attr]


def test_sampled_answers_with_a_seed_repeat(target: LlamaModel, pair: dict[str, Path]) -> None:
    engine = engine_with(target, pair["draft"])
    sampled = replace(GREEDY, temperature=0.8, top_k=40, top_p=0.95, seed=42)
    answers = []
    for _ in range(2):
        clear(engine)
        answers.append(run(engine, Generate(1, prompt=PROMPTS[0], sampling=sampled))[1])
    assert answers[0][0] == answers[1][0]
    assert answers[0][1].drafted > 0
    clear(engine)
    other = run(engine, Generate(1, prompt=PROMPTS[0], sampling=replace(sampled, seed=7)))[1]
    assert other[0] != answers[0][0]
    engine.draft.close()  # type: ignore[union-attr]


def test_draft_max_zero_turns_speculation_off(target: LlamaModel, pair: dict[str, Path]) -> None:
    engine = engine_with(target, pair["draft"])
    clear(engine)
    done = run(engine, Generate(1, prompt=PROMPTS[1], sampling=replace(GREEDY, draft_max=0)))
    assert done[1][1].drafted == 0 and done[1][1].passes == 80
    engine.draft.close()  # type: ignore[union-attr]


def test_a_draft_of_another_vocabulary_is_refused(target: LlamaModel, tmp_path: Path) -> None:
    path = write_model(replace(DRAFT, n_vocab=1024), tmp_path / "big-vocab.gguf")
    with pytest.raises(IncompatibleDraft, match="1024 tokens, the model's 384"):
        DraftModel(LlamaModel([str(path)], SETTINGS, ()), target)


def test_a_draft_that_cannot_roll_back_is_refused(target: LlamaModel, tmp_path: Path) -> None:
    path = write_model(TINY_MAMBA, tmp_path / "mamba.gguf")
    with pytest.raises(IncompatibleDraft, match="cannot be rolled back"):
        DraftModel(LlamaModel([str(path)], SETTINGS, ()), target)


def test_a_recurrent_model_never_speculates(pair: dict[str, Path], tmp_path: Path) -> None:
    mamba = LlamaModel([str(write_model(TINY_MAMBA, tmp_path / "m.gguf"))], SETTINGS, ())
    engine = Engine(mamba, None, DraftModel(LlamaModel([str(pair["draft"])], SETTINGS, ()), mamba))
    done = run(engine, Generate(1, prompt="a b a b", sampling=replace(GREEDY, num_predict=12)))
    assert done[1][1].drafted == 0 and done[1][1].eval_tokens == 12
    engine.close()
    mamba.close()


class NeverGuess(Payoff):
    def guess(self, streams: int) -> bool:
        return False


def test_a_seeded_answer_does_not_depend_on_how_much_was_guessed(
    target: LlamaModel, pair: dict[str, Path]
) -> None:
    """The engine guesses or not by the clock (`Payoff`); each token's draw comes from
    the seed and its place in the answer, so the answer is the same either way."""
    sampled = replace(GREEDY, temperature=1.0, top_k=0, top_p=1.0, seed=11)
    answers = []
    for payoff in (AlwaysGuess(), NeverGuess()):
        draft = DraftModel(LlamaModel([str(pair["draft"])], SETTINGS, ()), target)
        engine = Engine(target, None, draft, payoff)
        clear(engine)
        answers.append(run(engine, Generate(1, prompt=PROMPTS[2], sampling=sampled))[1])
        draft.close()
    assert answers[0][0] == answers[1][0]
    assert answers[0][1].drafted > 0 and answers[1][1].drafted == 0


GRAPH = replace(SETTINGS, backend_sampling=True)
"""A draft whose guesses are picked in its graph (top 10 there), as on a GPU."""


def test_guesses_picked_in_the_graph_keep_the_targets_answers(
    target: LlamaModel, pair: dict[str, Path], alone: dict[str, list[TokenLogprob]]
) -> None:
    draft = DraftModel(LlamaModel([str(pair["draft"])], GRAPH, ()), target)
    assert draft.samples_in_graph
    engine = Engine(target, None, draft, AlwaysGuess(), overlap=OVERLAP)
    clear(engine)
    text, done = run(engine, Generate(1, prompt=PROMPTS[0], sampling=GREEDY))[1]
    agreed(alone[PROMPTS[0]], text)
    assert 0 < done.accepted < done.drafted
    draft.close()


def test_on_a_gpu_a_drafting_stream_checks_as_many_guesses_every_step(
    pair: dict[str, Path], alone: dict[str, list[TokenLogprob]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapped as on a GPU, with the target's argmax in its graph: every step checks
    `STEADY_LENGTH` guesses, those the draft was unsure of filled in, so the batch keeps
    the shape llama.cpp's CUDA backend captured (in order, as on a CPU: the draft's own
    guesses alone). The answer stays the target's."""
    from localllm.engine import guesses

    lengths: list[int] = []
    real = guesses.pad

    def pad(generating: list[Any], drafts: dict[int, list[int]], n_ctx: int) -> dict[int, int]:
        own = real(generating, drafts, n_ctx)
        lengths.extend(len(d) for d in drafts.values())
        return own

    monkeypatch.setattr(guesses, "pad", pad)
    model = LlamaModel([str(pair["target"])], GRAPH, ())
    draft = DraftModel(LlamaModel([str(pair["draft"])], GRAPH, ()), model)
    engine = Engine(model, None, draft, AlwaysGuess(), overlap=OVERLAP)
    text, done = run(engine, Generate(1, prompt=PROMPTS[0], sampling=GREEDY))[1]
    agreed(alone[PROMPTS[0]], text)
    assert 0 < done.accepted < done.drafted
    assert set(lengths) == ({STEADY_LENGTH} if OVERLAP else set())
    engine.close()
    draft.close()
    model.close()


def test_the_graphs_first_guess_is_the_logits_own(
    target: LlamaModel, pair: dict[str, Path]
) -> None:
    """The same most likely token either way; its probability is over the top 10 in the
    graph (as llama-server's draft), so at least the whole vocabulary's."""
    import llama_cpp

    text = list(range(5, 40))
    drafts = [
        DraftModel(LlamaModel([str(pair["draft"])], s, ()), target) for s in (SETTINGS, GRAPH)
    ]
    rows = [d._catch_up([(0, text)])[0] for d in drafts]
    host, graph = (d._top(row, False) for d, row in zip(drafts, rows, strict=True))
    assert graph[0] == host[0] and 1.0 >= graph[1] >= host[1] - 1e-6
    banned = drafts[1]._top(rows[1], True)
    assert not drafts[1].model.is_eog(banned[0])
    assert llama_cpp.llama_get_sampled_candidates_count_ith(drafts[1].model.ctx, rows[1]) == 10
    for d in drafts:
        d.close()


def test_top_of_skips_banned_candidates() -> None:
    token, p = top_of([7, 3, 9], [1.0, 2.0, 0.0], ())
    assert token == 3 and p == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-2)))
    assert top_of([7, 3, 9], [1.0, 2.0, 0.0], (3,))[0] == 7
    assert top_of([3], [2.0], (3,)) == (-1, 0.0)


def test_a_new_prompt_goes_into_the_draft_a_micro_batch_a_step(
    target: LlamaModel, pair: dict[str, Path]
) -> None:
    """Fed whole, a long prompt's catch-up held every stream for its full prefill on the
    draft: now a micro-batch a step, and a stream already caught up guesses meanwhile."""
    draft = DraftModel(LlamaModel([str(pair["draft"])], SETTINGS, ()), target)
    short, long = [5, 6, 7, 8], [5 + i % 300 for i in range(1000)]
    draft._catch_up([(0, short)])
    fed = []
    while True:
        rows = draft._catch_up([(0, short), (1, long)])
        fed.append(draft.caught_up)
        assert 0 in rows  # the stream already in guesses every step
        if 1 in rows:
            break
    assert fed == [SETTINGS.n_ubatch, 1 + 1000 - (SETTINGS.n_ubatch - 1)]
    assert draft.cached[1] == long
    draft.close()
