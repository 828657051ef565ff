"""OpenAI's harmony format (gpt-oss): a reply is a run of messages, each
`<|start|>ROLE<|channel|>CHANNEL[ to=RECIPIENT][ <|constrain|>json]<|message|>TEXT`
closed by `<|end|>` (or by `<|call|>` / `<|return|>`, which end the generation).

Channels: `analysis` is the thinking, `final` the answer, `commentary` a preamble
to the user or, addressed `to=functions.NAME`, a tool call whose text is its JSON
arguments (the recipient may also come before the channel). The generation prompt
ends with `<|start|>assistant`, so the first message's start is implied.
"""

from __future__ import annotations

import json

from localllm.engine.protocol import ToolCall
from localllm.formats.base import Parsed, partial_suffix

START, CHANNEL, MESSAGE, END = "<|start|>", "<|channel|>", "<|message|>", "<|end|>"
CONSTRAIN, CALL, RETURN = "<|constrain|>", "<|call|>", "<|return|>"
PRESERVED = (START, CHANNEL, MESSAGE, END, CONSTRAIN, CALL, RETURN)
_ENDS = (END, CALL, RETURN)


class HarmonyReply:
    """A `Parser` for harmony replies: thinking, answer and tool calls in one."""

    def __init__(self) -> None:
        self._buf = START + "assistant"
        self._state = "start"  # start (between messages) | header | text
        self._kind = "content"  # of the message being read: content | thinking | call
        self._recipient = ""
        self._arguments: list[str] = []

    def feed(self, text: str) -> Parsed:
        self._buf += text
        return self._scan(final=False)

    def finish(self) -> Parsed:
        out = self._scan(final=True)
        if self._state == "text" and self._kind == "call":
            out += self._end_message()
        return out

    def _scan(self, final: bool) -> Parsed:
        out = Parsed()
        while self._buf:
            if self._state == "start":
                at = self._buf.find(START)
                if at < 0:
                    # Text outside a message (a model that skipped the header): the answer.
                    keep = 0 if final else partial_suffix(self._buf, (START,))
                    out += Parsed(content=self._buf[: len(self._buf) - keep])
                    self._buf = self._buf[len(self._buf) - keep :]
                    break
                out += Parsed(content=self._buf[:at])
                self._buf, self._state = self._buf[at + len(START) :], "header"
            elif self._state == "header":
                at = self._buf.find(MESSAGE)
                if at < 0:
                    if final:
                        if CHANNEL not in self._buf:  # plain text, no harmony at all
                            out += Parsed(content=self._buf.removeprefix("assistant"))
                        self._buf = ""
                    break
                self._header(self._buf[:at])
                self._buf, self._state = self._buf[at + len(MESSAGE) :], "text"
            else:
                ends = [(i, tag) for tag in _ENDS if (i := self._buf.find(tag)) >= 0]
                if ends:
                    at, tag = min(ends)
                    out += self._text(self._buf[:at])
                    out += self._end_message()
                    self._buf, self._state = self._buf[at + len(tag) :], "start"
                    continue
                keep = 0 if final else partial_suffix(self._buf, _ENDS)
                out += self._text(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
        return out

    def _header(self, raw: str) -> None:
        """`assistant<|channel|>commentary to=functions.f <|constrain|>json` and kin."""
        raw = raw.replace(CONSTRAIN, " " + CONSTRAIN)
        channel = ""
        if CHANNEL in raw:
            before, _, after = raw.partition(CHANNEL)
            words = after.split()
            channel = words[0] if words else ""
            raw = before + " " + " ".join(words[1:])
        recipient = next((w[3:] for w in raw.split() if w.startswith("to=")), "")
        self._recipient = recipient
        self._arguments = []
        if recipient:
            self._kind = "call"
        elif channel == "analysis":
            self._kind = "thinking"
        else:
            self._kind = "content"  # final, or a commentary preamble

    def _text(self, text: str) -> Parsed:
        if not text:
            return Parsed()
        if self._kind == "call":
            self._arguments.append(text)
            return Parsed()
        if self._kind == "thinking":
            return Parsed(thinking=text)
        return Parsed(content=text)

    def _end_message(self) -> Parsed:
        if self._kind != "call":
            return Parsed()
        text = "".join(self._arguments).strip()
        self._kind, self._arguments = "content", []
        name = self._recipient.removeprefix("functions.")
        try:
            arguments = json.loads(text) if text else {}
        except ValueError:
            arguments = None
        if not self._recipient.startswith("functions.") or not isinstance(arguments, dict):
            # Not a call of a function the request offered (gpt-oss's built-in python or
            # browser tools), or no JSON object: what the model wrote stays in the answer.
            return Parsed(content=text)
        return Parsed(calls=(ToolCall(name, arguments),))
