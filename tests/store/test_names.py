from __future__ import annotations

import pytest

from localllm.store.names import ModelName, ModelNameError, parse_name


def test_forms() -> None:
    assert parse_name("llama3.2") == ModelName("llama3.2", "latest")
    assert parse_name("Llama3.2:3B-Q8_0") == ModelName("llama3.2", "3b-q8_0")
    assert parse_name("me/assistant:v1") == ModelName("assistant", "v1", "me")
    assert str(parse_name("me/assistant")) == "me/assistant:latest"
    assert parse_name("qwen2.5:7b").short == "qwen2.5:7b"
    assert parse_name("phi4-mini").short == "phi4-mini"


@pytest.mark.parametrize(
    "bad",
    ["", "..", "../etc/passwd", "a/b/c", "a\\b", "x:y:z", "-x", "x:..", "a\x00b", "tab\tname",
     "x" * 200, "a/" + "b" * 81, "name with space", "/abs", "ns/..:t"],
)  # fmt: skip
def test_names_that_could_escape_the_store_are_refused(bad: str) -> None:
    with pytest.raises(ModelNameError):
        parse_name(bad)
