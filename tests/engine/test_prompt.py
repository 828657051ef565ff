"""Prompts as tokens (localllm/engine/prompt.py): fill in the middle with the model's
FIM tokens or a Go template's `.Suffix`, and the control tokens a format needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localllm.engine.model import LlamaModel
from localllm.engine.prompt import NoInsert, prompt_text, prompt_tokens
from localllm.engine.protocol import Generate
from localllm.planner.settings import LoadSettings
from tests.factory import FIM_TOKENS, ModelSpec, write_model

SETTINGS = LoadSettings(n_gpu_layers=0, n_ctx=512, n_seq_max=1, n_threads=1)
CODELLAMA = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
"""Ollama's codellama template (a Go template that knows `.Suffix`)."""


@pytest.fixture(scope="module")
def coder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    path = write_model(ModelSpec(name="coder", fim=True), tmp_path_factory.mktemp("c") / "c.gguf")
    model = LlamaModel([str(path)], SETTINGS, ())
    yield model
    model.close()


@pytest.fixture(scope="module")
def plain(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    model = LlamaModel([str(tiny_files["tiny"])], SETTINGS, ())
    yield model
    model.close()


def test_fim_tokens_frame_the_prefix_and_suffix(coder: LlamaModel) -> None:
    assert coder.fim is not None
    pre, suf, mid = coder.fim
    request = Generate(0, prompt="def f(", suffix="return x")
    body = coder.tokenize("def f(", add_special=False, parse_special=False)
    tail = coder.tokenize("return x", add_special=False, parse_special=False)
    assert prompt_tokens(coder, request, 512) == [coder.bos, pre, *body, suf, *tail, mid]
    text = prompt_text(coder, request)  # the tiny vocabulary spells spaces as ▁ bytes
    assert (
        text
        == f"<s>{FIM_TOKENS[0]}\u2581def\u2581f({FIM_TOKENS[1]}\u2581return\u2581x{FIM_TOKENS[2]}"
    )


def test_a_go_template_with_suffix_comes_first(plain: LlamaModel) -> None:
    request = Generate(0, prompt="def f(", suffix="return x", template=CODELLAMA)
    text = prompt_text(plain, request).replace("\u2581", " ")
    assert text == "<s> <PRE> def f( <SUF>return x <MID>"


def test_a_model_without_fim_tokens_cannot_insert(plain: LlamaModel) -> None:
    assert plain.fim is None
    with pytest.raises(NoInsert, match="does not support insert"):
        prompt_tokens(plain, Generate(0, prompt="a", suffix="b"), 512)


def test_only_single_token_markers_are_control_tokens(plain: LlamaModel) -> None:
    # `<|im_end|>` is one control token of the tiny vocabulary; `<think>` is bytes.
    (im_end,) = plain.tokenize("<|im_end|>", add_special=False)
    assert plain.control_tokens(("<|im_end|>", "<think>")) == {im_end}
    assert plain.piece(im_end) == b"" and plain.piece(im_end, special=True) == b"<|im_end|>"
