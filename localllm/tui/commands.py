"""The chat's slash commands, parsed apart from the screen that runs them.

As in `ollama run`: `/set parameter NAME VALUE`, `/set system TEXT`, `/show
WHAT`, `/clear`, `/save NAME`, `/load NAME`, `/model NAME`, `/help`, `/bye`,
and `/copy [code [N]]` for the clipboard. Parsing checks the arguments (a
parameter value is parsed as a Modelfile `PARAMETER` line would be), so a
typo is answered at once rather than by the server at the next message.
"""

from __future__ import annotations

from dataclasses import dataclass

from localllm.errors import LocalLLMError
from localllm.store.modelfile import PARAMETERS

SHOW_TOPICS = ("info", "parameters", "template", "system", "license")

HELP = """\
| Command | What it does |
|---|---|
| `/set parameter NAME VALUE` | set a sampling parameter for this chat (`/set parameter temperature 0.2`) |
| `/set system TEXT` | set this chat's system prompt (`/set system` alone clears it) |
| `/show info\\|parameters\\|template\\|system\\|license` | what the model is and how this chat runs it |
| `/clear` | forget the conversation so far (the chat stays in the history) |
| `/save NAME` | name this chat, to `/load` it later |
| `/load NAME` | open a saved chat by name (or number) |
| `/model NAME` | go on with another model |
| `/copy [code [N]]` | copy the last answer, or its last (Nth) code block |
| `/help`, `/?` | this list |
| `/bye` | quit |

Enter sends; Shift+Enter or Ctrl+J adds a line; a message that starts with \
`\"\"\"` goes on over lines until a line ends with `\"\"\"`; Up and Down recall \
earlier prompts; Esc stops the answer, keeping what came.
"""  # noqa: E501


class CommandError(LocalLLMError):
    """A slash command that cannot run as typed; the message says the right form."""


@dataclass(frozen=True)
class Command:
    name: str
    """set-parameter, set-system, show, clear, save, load, model, copy, help, bye."""
    args: tuple[str, ...] = ()
    value: object = None
    """The parsed parameter value (set-parameter)."""


def parse_command(text: str) -> Command:
    """The command `text` (which starts with "/") asks for."""
    head, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    word = head.lower()
    if word == "/set":
        return _parse_set(rest)
    if word == "/show":
        topic = rest.lower() or "info"
        if topic not in SHOW_TOPICS:
            raise CommandError(f"/show takes one of: {', '.join(SHOW_TOPICS)}")
        return Command("show", (topic,))
    if word in ("/save", "/load", "/model"):
        if not rest:
            raise CommandError(f"{word} needs a name: {word} NAME")
        return Command(word[1:], (rest,))
    if word == "/copy":
        return _parse_copy(rest)
    if word in ("/clear", "/bye", "/exit", "/quit", "/help", "/?"):
        if word in ("/exit", "/quit"):
            return Command("bye")
        return Command("help" if word == "/?" else word[1:])
    raise CommandError(f"unknown command {head}; /help lists them")


def _parse_set(rest: str) -> Command:
    what, _, value = rest.partition(" ")
    if what == "system":
        return Command("set-system", (value.strip(),))
    if what == "parameter":
        name, _, text = value.strip().partition(" ")
        text = text.strip()
        if not name or not text:
            raise CommandError("usage: /set parameter NAME VALUE")
        if name not in PARAMETERS:
            raise CommandError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
        try:
            parsed = PARAMETERS[name](text)
        except ValueError as exc:
            raise CommandError(f"{name}: {exc}") from None
        return Command("set-parameter", (name,), parsed)
    raise CommandError("usage: /set parameter NAME VALUE, or /set system TEXT")


def _parse_copy(rest: str) -> Command:
    words = rest.split()
    if not words:
        return Command("copy", ("answer",))
    if words[0] == "code" and len(words) <= 2:
        if len(words) == 2 and not (words[1].isdigit() and int(words[1]) > 0):
            raise CommandError("usage: /copy code N (N counts from 1)")
        return Command("copy", ("code", *words[1:]))
    raise CommandError("usage: /copy, or /copy code [N]")


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown answer, without their fences."""
    blocks: list[str] = []
    current: list[str] | None = None
    fence = ""
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if current is None:
            if stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
                current = []
        elif stripped.startswith(fence) and not stripped.strip(fence[0]).strip():
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    if current is not None:
        blocks.append("\n".join(current))
    return blocks
