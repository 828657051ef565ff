"""Speculative decoding through the server (Modelfile DRAFT, the `ollama` client): the
same greedy answers, the draft's memory counted, acceptance in `ps`, and a draft
that cannot draft for its model refused with the reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest

from localllm.store.store import Store
from tests.engine.test_draft import AGREEING, DRAFT, TARGET
from tests.factory import write_model
from tests.live_server import Running, add_model

pytestmark = pytest.mark.slow
GREEDY = {"temperature": 0, "num_predict": 48, "seed": 1}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    target = write_model(TARGET, tmp_path / "target.gguf", np.float16, 3, 0, AGREEING, True)
    draft = write_model(DRAFT, tmp_path / "draft.gguf", np.float16, 3, 0, AGREEING, True)
    # Same size and end tokens, other texts for three tokens: only the worker sees it.
    odd = write_model(replace(DRAFT, fim=True), tmp_path / "odd.gguf", np.float16, 3)
    store = Store(tmp_path / "models")
    add_model(store, "plain", target, "PARAMETER num_ctx 1024\n")
    add_model(store, "fast", target, f"PARAMETER num_ctx 1024\nDRAFT {draft}\n")
    add_model(store, "odd", target, f"PARAMETER num_ctx 1024\nDRAFT {odd}\n")
    return store


def test_a_draft_changes_no_greedy_answer(
    make_server: Callable[..., Running], store: Store
) -> None:
    server = make_server(store)
    client = ollama.Client(host=server.url)
    prompts = ["Once upon a time", "a b c a b c", "The cat sat on the"]
    for prompt in prompts:
        plain = client.generate("plain", prompt, options={**GREEDY, "prompt_lookup": False})
        fast = client.generate("fast", prompt, options=GREEDY)
        assert fast.response == plain.response, prompt
        assert fast.eval_count == plain.eval_count
    running = {m["name"]: m for m in httpx.get(f"{server.url}/api/ps").json()["models"]}
    spec = running["fast:latest"]["speculation"]
    assert spec["drafter"] == "draft model" and spec["drafted"] > 0
    assert 0 < spec["acceptance"] <= 1 and spec["tokens_per_pass"] > 1
    # the draft's weights and cache are counted with the model's
    assert running["fast:latest"]["size"] > running["plain:latest"]["size"]
    shown = client.show("fast")
    assert shown.modelfile is not None and "DRAFT " in shown.modelfile


def test_a_seeded_sampled_answer_repeats(make_server: Callable[..., Running], store: Store) -> None:
    client = ollama.Client(host=make_server(store).url)
    options = {"temperature": 0.9, "seed": 5, "num_predict": 32}
    first = client.generate("fast", "Once upon a time", options=options)
    again = client.generate("fast", "Once upon a time", options=options)
    assert first.response == again.response


def test_a_draft_of_other_tokens_is_refused_with_the_reason(
    make_server: Callable[..., Running], store: Store
) -> None:
    client = ollama.Client(host=make_server(store).url)
    with pytest.raises(ollama.ResponseError, match="cannot draft for this model: token"):
        client.generate("odd", "hello", options=GREEDY)
    assert client.generate("plain", "hello", options=GREEDY).response  # the server goes on


def test_a_model_that_no_longer_fits_beside_its_draft_gets_a_shorter_context(
    store: Store,
) -> None:
    from localllm.planner.memory import estimate
    from localllm.store.names import parse_name
    from localllm.workers.loading import plan_load
    from tests.live_server import BUDGET

    fast = store.get(parse_name("fast"))
    plain = plan_load(store.get(parse_name("plain")), store, BUDGET, None, {}, 1, trial=False)
    roomy = plan_load(fast, store, BUDGET, None, {}, 1, trial=False)
    assert roomy.load.draft is not None
    assert roomy.option.settings.n_ctx == plain.option.settings.n_ctx
    draft_bytes = roomy.option.estimate.total - plain.option.estimate.total
    assert draft_bytes > 0
    # beside the draft, less than the model takes at this context even with flash
    # attention's smaller buffers (`flash_attention`)
    with_fa = replace(plain.option.settings, flash_attn=True)
    smallest = estimate(plain.option.candidate.model, with_fa, (), BUDGET.repack).total
    tight = replace(BUDGET, ram_usable=smallest + draft_bytes - 1)
    squeezed = plan_load(fast, store, tight, None, {}, 1, trial=False)
    assert squeezed.option.settings.n_ctx < plain.option.settings.n_ctx
    assert squeezed.option.estimate.total <= tight.ram_usable
    assert squeezed.load.draft is not None
    assert squeezed.load.draft.settings.n_ctx == squeezed.option.settings.n_ctx
