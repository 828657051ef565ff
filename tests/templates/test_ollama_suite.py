"""Ollama's own template suite, rendered byte for byte.

The templates and the expected texts are copied from Ollama's repository
(github.com/ollama/ollama, MIT licence): `template/*.gotmpl` and
`template/testdata/<template>/<case>`, as its `template_test.go` uses them, with
the same three conversations and the same allowance (five templates may end
with one space the expected text lacks).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localllm.templates.ollama import OllamaTemplate

DATA = Path(__file__).parent / "testdata"
TEMPLATES = sorted(p.name for p in DATA.glob("*.gotmpl"))
HELLO = {"role": "user", "content": "Hello, how are you?"}
GREAT = {"role": "assistant", "content": "I'm doing great. How can I help you today?"}
SHOW = {"role": "user", "content": "I'd like to show off how chat templating works!"}
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
CASES = {
    "user": [HELLO],
    "user-assistant-user": [HELLO, GREAT, SHOW],
    "system-user-assistant-user": [SYSTEM, HELLO, GREAT, SHOW],
}
TRAILING_SPACE_ALLOWED = {"chatqa.gotmpl", "llama2-chat.gotmpl", "mistral-instruct.gotmpl",
                          "openchat.gotmpl", "vicuna.gotmpl"}  # fmt: skip


def test_the_suite_is_all_here() -> None:
    assert len(TEMPLATES) == 20


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_renders_as_ollama_does(name: str, case: str) -> None:
    template = OllamaTemplate((DATA / name).read_text())
    got = template.render(CASES[case])
    if name in TRAILING_SPACE_ALLOWED and got.endswith(" "):
        got = got[:-1]
    assert got == (DATA / "expected" / name / case).read_text()
