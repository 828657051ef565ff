"""A typed request and its model, made into the worker's `Generate`: the rules every
dialect shares, written once.

- options: the dialect's defaults < the Modelfile's PARAMETERs < the request's;
- messages: the request's leading system messages replace the Modelfile's SYSTEM,
  the Modelfile's MESSAGEs come next, then the rest; `developer` is a system message
  to the template; a tool result without a name gets its call's;
- images: a marker in the text for each, in order (the service decodes them);
- thinking: the explicit `think` (a 400 for a model that cannot think), or an
  effort, which only sets the level of a model that thinks;
- tools and tool choice, and a format as a grammar.

Pure functions of plain data, tested without a model (`tests/inference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localllm.constraints.grammar import json_grammar, lenient_grammar
from localllm.engine.protocol import MARKER, Generate, Image
from localllm.errors import APIError
from localllm.formats import thinks
from localllm.inference.options import engine_sampling, options
from localllm.inference.request import (
    ChatRequest,
    Format,
    ImageIn,
    Message,
    PromptRequest,
    Text,
    Think,
)
from localllm.inference.thinking import Thinking, thinking_for
from localllm.store.manifests import Manifest
from localllm.store.templates import check_template

EFFORTS: dict[str, Think] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
"""Reasoning efforts (OpenAI's, Anthropic's) as thinking levels."""


@dataclass(frozen=True)
class Recipe:
    """What the service runs: the worker's request, the options that choose how the
    model loads (`num_ctx`...), and how the reply's thinking is split (None: a raw
    prompt, whose reply is plain text)."""

    generate: Generate
    options: dict[str, Any]
    thinking: Thinking | None


def template_of(request: ChatRequest | PromptRequest, manifest: Manifest) -> str | None:
    """The request's own template (checked: a 400 with its line if it does not parse),
    else the Modelfile's; None: the GGUF's own."""
    if request.template:
        return check_template(request.template)
    return manifest.template


def thinking(request: ChatRequest, template: str | None, model: str) -> Thinking:
    """`think` as asked; else an effort, for a model whose `template` thinks."""
    think = request.think
    level = EFFORTS.get(request.effort or "")
    if level is False and think is None:
        think = False
    elif level and think is not False and thinks(template):
        think = level
    return thinking_for(think, template, model)


def images(request: ChatRequest) -> tuple[ImageIn, ...]:
    """The request's images in the order of their markers."""
    return tuple(p for m in request.messages for p in m.content if isinstance(p, ImageIn))


def messages(request: ChatRequest, manifest: Manifest) -> tuple[dict[str, Any], ...]:
    """The conversation as the template reads it, the Modelfile's before the request's."""
    given = request.messages
    lead = 0
    while lead < len(given) and given[lead].role in ("system", "developer"):
        lead += 1
    out: list[dict[str, Any]] = []
    if lead == 0 and manifest.system:
        out.append({"role": "system", "content": manifest.system})
    out += [_message(m, {}) for m in given[:lead] if m.text]  # "": no system prompt
    out += [{"role": m.role, "content": m.content} for m in manifest.messages]
    names: dict[str, str] = {}
    for m in given[lead:]:
        out.append(_message(m, names))
    return tuple(out)


def _message(m: Message, names: dict[str, str]) -> dict[str, Any]:
    content = "".join(p.text if isinstance(p, Text) else MARKER for p in m.content)
    out: dict[str, Any] = {
        "role": "system" if m.role == "developer" else m.role,
        "content": content,
    }
    if m.thinking:
        out["thinking"] = m.thinking
    if m.tool_calls:
        calls = []
        for call in m.tool_calls:
            names[call.id] = call.name
            entry: dict[str, Any] = {
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            if call.id:
                entry = {"id": call.id, **entry}
            calls.append(entry)
        out["tool_calls"] = calls
    if m.role == "tool":
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
        out["name"] = m.name or names.get(m.tool_call_id, "")
    elif m.name:
        out["name"] = m.name
    return out


def tools(request: ChatRequest) -> tuple[tuple[dict[str, Any], ...], str]:
    """(the tools as templates take them, the choice as auto | none | required). A tool
    is prompt material: its schema becomes a grammar only when a call is forced, and
    then loosened where a grammar cannot hold it (`constraints.grammar.usable_tools`)."""
    out: list[dict[str, Any]] = []
    for tool in request.tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = dict(tool.parameters or {"type": "object"})
        out.append({"type": "function", "function": function})
    choice = request.tool_choice
    if choice.name is not None:
        out = [t for t in out if t["function"]["name"] == choice.name]
        if not out:
            raise APIError(400, f"{choice.where}: {choice.name!r} is not in tools")
        return tuple(out), "required"
    if choice.mode == "required" and not out:
        raise APIError(400, f'{choice.where}: "required" needs tools')
    return tuple(out), choice.mode


def grammar(fmt: Format | None) -> str | None:
    """A format as a grammar, loosened where a grammar cannot hold its schema; a 400
    naming the bad part of a schema that is not a JSON schema."""
    if fmt is None:
        return None
    if fmt.schema is None:
        return json_grammar()
    return lenient_grammar(dict(fmt.schema), fmt.where)


def chat(
    request: ChatRequest, manifest: Manifest, gguf_template: str | None, decoded: tuple[Image, ...]
) -> Recipe:
    """The worker's request for a chat; `gguf_template`: the model file's own template,
    `decoded`: `images(request)` decoded."""
    template = template_of(request, manifest)
    mode = thinking(request, template or gguf_template, manifest.name)
    merged = options(request.sampling, manifest)
    tool_list, choice = tools(request)
    generate = Generate(
        0,
        messages=messages(request, manifest),
        template=template,
        tools=tool_list,
        tool_choice=choice,
        sampling=engine_sampling(merged, request.sampling.logprobs),
        grammar=grammar(request.format),
        truncate=request.truncate,
        shift=request.shift,
        num_keep=int(merged.get("num_keep", 4)),
        think=mode.flag,
        think_level=mode.level,
        images=decoded,
        lora=request.lora,
    )
    return Recipe(generate, merged, mode)


def prompt(request: PromptRequest, manifest: Manifest, decoded: tuple[Image, ...]) -> Recipe:
    """The worker's request for raw text (or fill in the middle: the template, if any,
    has `.Suffix`, else the model's FIM tokens place it)."""
    if request.suffix and request.images:
        raise APIError(400, "images: images cannot go with a suffix (fill in the middle)")
    merged = options(request.sampling, manifest)
    generate = Generate(
        0,
        prompt=request.prompt,
        suffix=request.suffix or None,
        template=template_of(request, manifest) if request.suffix else None,
        sampling=engine_sampling(merged, request.sampling.logprobs),
        grammar=grammar(request.format),
        truncate=request.truncate,
        shift=request.shift,
        num_keep=int(merged.get("num_keep", 4)),
        images=decoded,
        lora=request.lora,
    )
    return Recipe(generate, merged, None)
