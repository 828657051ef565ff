"""The catalogue's Go templates render what the model's own Jinja template renders
(`tests/templates/testdata/jinja/`, with their sources), one test per family, for the
conversations of Ollama's suite and the Modelfile's SYSTEM.

Families whose Jinja writes what Go's template language cannot say (Llama 3.1 and
Qwen format each tool's JSON with `tojson(indent=4)`; Qwen3 and gpt-oss branch on
message content) keep the GGUF's own Jinja template: the catalogue gives them none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localllm.engine.chat import render
from localllm.store.catalogue import Catalogue
from localllm.store.names import parse_name
from tests.templates.test_ollama_suite import CASES, SYSTEM

JINJA = Path(__file__).parent / "testdata" / "jinja"
FAMILIES = {"gemma3": "<bos>", "deepseek-r1": "<\uff5cbegin\u2581of\u2581sentence\uff5c>"}
"""Each family and its BOS text, which its Jinja writes and llama.cpp adds instead when
the text lacks it (`engine.prompt`)."""
ASSISTANT_LAST = [CASES["user"][0], {"role": "assistant", "content": "Sure."}]


def entries(family: str) -> list[str]:
    return [n.short for n in Catalogue().names() if n.model == family]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", [*CASES, "system only"])
def test_the_catalogues_go_template_renders_the_models_jinja(family: str, case: str) -> None:
    jinja = (JINJA / f"{family}.jinja").read_text()
    messages: list[dict[str, Any]] = CASES.get(case, [SYSTEM, CASES["user"][0]])
    expected = render(jinja, messages, FAMILIES[family], "")
    assert expected.startswith(FAMILIES[family])
    names = entries(family)
    assert names
    for name in names:
        resolved = Catalogue().resolve(parse_name(name))
        assert resolved is not None and resolved.modelfile.template, name
        go = resolved.modelfile.template
        assert render(go, messages) == expected.removeprefix(FAMILIES[family]), name


@pytest.mark.parametrize("family", FAMILIES)
def test_the_go_template_keeps_the_models_thinking_and_capabilities(family: str) -> None:
    from localllm.formats import thinks
    from localllm.formats.think import opens_thinking

    resolved = Catalogue().resolve(parse_name(family))
    assert resolved is not None
    go, jinja = resolved.modelfile.template or "", (JINJA / f"{family}.jinja").read_text()
    assert (thinks(go), opens_thinking(go)) == (thinks(jinja), opens_thinking(jinja))
    assert opens_thinking(go) == (family == "deepseek-r1")
