"""With a real tokenizer (Gemma 3 270M): the catalogue's Go template gives the model
exactly the tokens its Jinja gives (BOS written by Jinja, added by llama.cpp for Go),
and control tokens are written out only when a format asks for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.model import LlamaModel
from localllm.engine.prompt import prompt_tokens
from localllm.engine.protocol import Generate
from localllm.planner.settings import LoadSettings
from localllm.store.catalogue import Catalogue
from localllm.store.names import parse_name
from tests.templates.test_ollama_suite import CASES

pytestmark = pytest.mark.slow
JINJA = Path(__file__).parents[1] / "templates" / "testdata" / "jinja" / "gemma3.jinja"


@pytest.fixture(scope="module")
def gemma(gemma3_270m: Path) -> Iterator[LlamaModel]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=1024, n_seq_max=1, n_threads=2)
    model = LlamaModel([str(gemma3_270m)], settings, ())
    yield model
    model.close()


@pytest.mark.parametrize("case", CASES)
def test_the_go_template_feeds_the_jinjas_tokens(gemma: LlamaModel, case: str) -> None:
    resolved = Catalogue().resolve(parse_name("gemma3:1b"))
    assert resolved is not None and resolved.modelfile.template
    messages = tuple(CASES[case])
    go = Generate(0, messages=messages, template=resolved.modelfile.template)
    jinja = Generate(0, messages=messages, template=JINJA.read_text())
    tokens = prompt_tokens(gemma, go, 1024)
    assert tokens == prompt_tokens(gemma, jinja, 1024)
    assert tokens[0] == gemma.bos and tokens.count(gemma.bos) == 1


def test_control_tokens_are_written_out_only_when_asked(gemma: LlamaModel) -> None:
    (end_of_turn,) = gemma.tokenize("<end_of_turn>", add_special=False)
    assert gemma.control_tokens(("<end_of_turn>", "<|channel|>")) == {end_of_turn}
    assert gemma.piece(end_of_turn) == b""
    assert gemma.piece(end_of_turn, special=True) == b"<end_of_turn>"
