"""The recipe without a model: a typed request and a manifest in, the worker's
request out, the same rules for every dialect."""

from __future__ import annotations

import pytest

from localllm.engine.protocol import MARKER, Image
from localllm.errors import APIError
from localllm.inference import recipe
from localllm.inference.request import (
    CallIn,
    ChatRequest,
    Format,
    ImageIn,
    Message,
    PromptRequest,
    Sampling,
    Text,
    Tool,
    ToolChoice,
)
from localllm.store.manifests import Layer, Manifest
from localllm.store.modelfile import Message as ModelfileMessage

PLAIN = "{% for m in messages %}{{ m.content }}{% endfor %}"
THINKER = (
    "{% if enable_thinking %}<think>{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
)
MODEL = Manifest(
    "m:latest",
    Layer("sha256-" + "0" * 64, 1),
    parameters={"temperature": 0.3, "num_ctx": 2048, "stop": ["END"]},
    system="Modelfile system",
    messages=(
        ModelfileMessage("user", "example question"),
        ModelfileMessage("assistant", "example answer"),
    ),
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
PIXELS = Image(1, 1, b"\0\0\0", "d")


def user(text: str) -> Message:
    return Message("user", (Text(text),))


def chat(request: ChatRequest, manifest: Manifest = MODEL, template: str = PLAIN) -> recipe.Recipe:
    images = tuple(PIXELS for _ in recipe.images(request))
    return recipe.chat(request, manifest, template, images)


def test_the_modelfile_system_and_messages_come_before_the_request() -> None:
    made = chat(ChatRequest("m", (user("hi"),)))
    roles = [(m["role"], m["content"]) for m in made.generate.messages or ()]
    assert roles == [
        ("system", "Modelfile system"),
        ("user", "example question"),
        ("assistant", "example answer"),
        ("user", "hi"),
    ]


def test_a_leading_system_message_replaces_the_modelfile_system_and_comes_first() -> None:
    request = ChatRequest("m", (Message("developer", (Text("mine"),)), user("hi")))
    messages = chat(request).generate.messages or ()
    assert [(m["role"], m["content"]) for m in messages][:2] == [
        ("system", "mine"),
        ("user", "example question"),
    ]
    assert all(m["content"] != "Modelfile system" for m in messages)


def test_an_empty_system_prompt_means_none() -> None:
    request = ChatRequest("m", (Message("system", (Text(""),)), user("hi")))
    assert next(m["role"] for m in chat(request).generate.messages or ()) == "user"


def test_a_system_message_later_in_the_conversation_is_kept_in_place() -> None:
    request = ChatRequest("m", (user("hi"), Message("system", (Text("be brief"),)), user("ok")))
    messages = chat(request).generate.messages or ()
    assert [m["role"] for m in messages][-3:] == ["user", "system", "user"]
    assert messages[0]["content"] == "Modelfile system"


def test_a_tool_result_gets_the_name_of_its_call() -> None:
    call = CallIn("weather", {"city": "Oslo"}, "call_7")
    request = ChatRequest(
        "m",
        (
            user("hi"),
            Message("assistant", tool_calls=(call,)),
            Message("tool", (Text("sunny"),), tool_call_id="call_7"),
        ),
    )
    messages = chat(request).generate.messages or ()
    assert messages[-2]["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "weather", "arguments": {"city": "Oslo"}},
        }
    ]
    assert messages[-1] == {
        "role": "tool",
        "content": "sunny",
        "tool_call_id": "call_7",
        "name": "weather",
    }


def test_images_leave_a_marker_each_in_order() -> None:
    request = ChatRequest("m", (Message("user", (ImageIn("a"), Text("and"), ImageIn("b"))),))
    assert recipe.images(request) == (ImageIn("a"), ImageIn("b"))
    made = chat(request)
    assert (made.generate.messages or ())[-1]["content"] == f"{MARKER}and{MARKER}"
    assert len(made.generate.images) == 2


def test_options_are_dialect_defaults_then_modelfile_then_request() -> None:
    sampling = Sampling(
        {"temperature": 0.9, "seed": 3, "top_p": None},
        {"repeat_penalty": 1.0, "temperature": 0.1, "top_p": 0.5},
    )
    made = chat(ChatRequest("m", (user("hi"),), sampling=sampling))
    engine = made.generate.sampling
    assert (engine.temperature, engine.seed, engine.repeat_penalty) == (0.9, 3, 1.0)
    assert engine.top_p == 0.5 and engine.stop == ("END",)
    assert made.options["num_ctx"] == 2048


@pytest.mark.parametrize(
    ("think", "effort", "template", "flag", "level"),
    [
        (None, None, THINKER, None, ""),
        (True, None, THINKER, True, ""),
        (None, "low", THINKER, True, "low"),
        (None, "xhigh", THINKER, True, "high"),
        (None, "none", THINKER, False, ""),
        (False, "high", THINKER, False, ""),
        (None, "high", PLAIN, None, ""),  # an effort is a hint: a model that cannot think answers
        (None, "none", PLAIN, False, ""),
    ],
)
def test_thinking_from_think_and_effort(
    think: bool | None, effort: str | None, template: str, flag: bool | None, level: str
) -> None:
    made = chat(ChatRequest("m", (user("hi"),), think=think, effort=effort), template=template)
    assert (made.generate.think, made.generate.think_level) == (flag, level)


def test_asking_a_model_that_cannot_think_to_think_is_a_400() -> None:
    with pytest.raises(APIError, match="does not support thinking") as caught:
        chat(ChatRequest("m", (user("hi"),), think=True))
    assert caught.value.status == 400


def test_a_named_tool_choice_keeps_that_tool_and_requires_a_call() -> None:
    tools = (Tool("a", parameters=SCHEMA), Tool("b"))
    made = chat(ChatRequest("m", (user("hi"),), tools, ToolChoice("required", "b")))
    assert [t["function"]["name"] for t in made.generate.tools] == ["b"]
    assert made.generate.tool_choice == "required"
    assert made.generate.tools[0]["function"]["parameters"] == {"type": "object"}


def test_tool_choice_errors_name_the_dialects_field() -> None:
    with pytest.raises(APIError, match=r"^tool_choice\.name: 'c' is not in tools$"):
        chat(
            ChatRequest(
                "m", (user("hi"),), (Tool("a"),), ToolChoice("required", "c", "tool_choice.name")
            )
        )
    with pytest.raises(APIError, match=r'^tool_choice: "required" needs tools$'):
        chat(ChatRequest("m", (user("hi"),), tool_choice=ToolChoice("required")))


def test_a_format_becomes_a_grammar_and_a_bad_schema_names_its_field() -> None:
    assert chat(ChatRequest("m", (user("hi"),), format=Format(SCHEMA))).generate.grammar
    assert chat(ChatRequest("m", (user("hi"),), format=Format(None))).generate.grammar
    bad = Format({"type": "object", "properties": {"x": {"type": "nope"}}}, "text.format.schema")
    with pytest.raises(Exception, match=r"^text\.format\.schema"):
        chat(ChatRequest("m", (user("hi"),), format=bad))


def test_a_requests_template_is_checked_and_used() -> None:
    made = chat(ChatRequest("m", (user("hi"),), template="{{ .Prompt }}"))
    assert made.generate.template == "{{ .Prompt }}"
    with pytest.raises(Exception, match="template"):
        chat(ChatRequest("m", (user("hi"),), template="{{ .Prompt "))


def test_a_raw_prompt_has_no_template_unless_it_fills_in_the_middle() -> None:
    raw = recipe.prompt(PromptRequest("m", "def f("), MODEL, ())
    assert raw.generate.messages is None and raw.generate.template is None
    assert raw.thinking is None
    fim = recipe.prompt(
        PromptRequest("m", "def f(", "\n  return x", template="{{ .Suffix }}"), MODEL, ()
    )
    assert fim.generate.suffix == "\n  return x" and fim.generate.template == "{{ .Suffix }}"
    with pytest.raises(APIError, match="suffix"):
        recipe.prompt(PromptRequest("m", "x", "y", (ImageIn("images.0"),)), MODEL, (PIXELS,))
