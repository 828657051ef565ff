"""Capture the requests real clients send, for the golden codec tests.

    python tests/dialects/capture.py sdks                 # openai, anthropic, ollama (Python)
    python tests/dialects/capture.py claude-code DIR      # DIR/node_modules/.bin/claude
    python tests/dialects/capture.py codex DIR            # DIR/node_modules/.bin/codex

A recording server on 127.0.0.1 answers every API with a short canned reply in that
API's shape (streamed or not, as asked) and keeps each request's JSON body; the
first body of each client and endpoint is written to `golden/requests/<name>.json`
with its path. Nothing leaves the machine: the agents are pointed at the recorder.
The files are committed; run this again only to refresh them for a new client
version (and review the diff of `golden/decoded/`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

GOLDEN = Path(__file__).parent / "golden" / "requests"


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool = False) -> Response:
    def body() -> Iterator[bytes]:
        for kind, data in events:
            head = f"event: {kind}\n" if kind else ""
            yield f"{head}data: {json.dumps(data)}\n\n".encode()
        if done:
            yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def _anthropic(body: dict[str, Any]) -> Response:
    usage = {"input_tokens": 3, "output_tokens": 1}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        whole = {**message, "content": [{"type": "text", "text": "Hi."}], "stop_reason": "end_turn"}
        return JSONResponse(whole)
    return _sse(
        [
            ("message_start", {"type": "message_start", "message": message}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi."},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "usage": {"output_tokens": 1},
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def _responses(body: dict[str, Any]) -> Response:
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi.", "annotations": []}],
    }
    usage = {
        "input_tokens": 3,
        "output_tokens": 1,
        "total_tokens": 4,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": body["model"],
        "status": "completed",
        "output": [item],
        "usage": usage,
    }
    if not body.get("stream"):
        return JSONResponse(response)
    return _sse(
        [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": 0,
                    "response": {**response, "status": "in_progress", "output": []},
                },
            ),
            (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "sequence_number": 1,
                    "output_index": 0,
                    "item": {**item, "content": []},
                },
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 2,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "Hi.",
                },
            ),
            (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": 3,
                    "output_index": 0,
                    "item": item,
                },
            ),
            (
                "response.completed",
                {"type": "response.completed", "sequence_number": 4, "response": response},
            ),
        ]
    )


def _chat(body: dict[str, Any]) -> Response:
    head = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "Hi."}
        return JSONResponse(
            {
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )
    chunk = {**head, "object": "chat.completion.chunk"}
    return _sse(
        [
            (
                None,
                {
                    **chunk,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi."}}],
                },
            ),
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        ],
        done=True,
    )


def _ollama(body: dict[str, Any]) -> Response:
    out = {
        "model": body["model"],
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Hi."},
        "done": True,
        "done_reason": "stop",
    }
    return JSONResponse(out)


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        routes = [
            Route("/v1/messages", self._answer(_anthropic), methods=["POST"]),
            Route(
                "/v1/messages/count_tokens",
                self._answer(lambda b: JSONResponse({"input_tokens": 3})),
                methods=["POST"],
            ),
            Route("/v1/responses", self._answer(_responses), methods=["POST"]),
            Route("/v1/chat/completions", self._answer(_chat), methods=["POST"]),
            Route("/api/chat", self._answer(_ollama), methods=["POST"]),
            Route("/v1/models", lambda r: JSONResponse({"object": "list", "data": []})),
            Route("/api/version", lambda r: JSONResponse({"version": "0.13.5"})),
            Route("/api/tags", lambda r: JSONResponse({"models": []})),
        ]
        app = Starlette(routes=routes)
        self.server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def _answer(self, reply: Callable[[dict[str, Any]], Response]) -> Any:
        async def endpoint(request: Request) -> Response:
            body = await request.json()
            self.bodies.append((request.url.path, body))
            return reply(body)

        return endpoint

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def save(self, name: str, path: str) -> None:
        """The first body sent to `path`, as `golden/requests/<name>.json`."""
        body = next(b for p, b in self.bodies if p == path)
        GOLDEN.mkdir(parents=True, exist_ok=True)
        out = GOLDEN / f"{name}.json"
        out.write_text(json.dumps({"path": path, "body": body}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}")


PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
"""A 1x1 PNG."""
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def sdks() -> None:
    import anthropic
    import ollama
    import openai

    recorder = Recorder()
    with recorder as url:
        oa: Any = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
        oa.chat.completions.create(
            model="m",
            stream=True,
            stream_options={"include_usage": True},
            messages=[
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is here?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
            tool_choice="auto",
            reasoning_effort="low",
            max_completion_tokens=64,
            temperature=0.2,
            seed=7,
            logprobs=True,
            top_logprobs=2,
        )
        recorder.save("openai-python-chat", "/v1/chat/completions")
        oa.responses.create(
            model="m",
            instructions="Be brief.",
            max_output_tokens=64,
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "weather",
                    "arguments": '{"city": "Oslo"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
            tools=[{"type": "function", "name": "weather", "parameters": WEATHER, "strict": False}],
            text={"format": {"type": "json_schema", "name": "answer", "schema": WEATHER}},
            reasoning={"effort": "medium"},
        )
        recorder.save("openai-python-responses", "/v1/responses")
        an: Any = anthropic.Anthropic(base_url=url, api_key="x")
        an.messages.create(
            model="m",
            max_tokens=64,
            system="Be brief.",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "text", "text": "Weather here?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Look it up.", "signature": "s"},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "weather",
                            "input": {"city": "Oslo"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            tools=[{"name": "weather", "description": "Weather now", "input_schema": WEATHER}],
            tool_choice={"type": "any"},
            thinking={"type": "enabled", "budget_tokens": 1024},
            stop_sequences=["END"],
        )
        recorder.save("anthropic-python", "/v1/messages")
        ol: Any = ollama.Client(host=url)
        ol.chat(
            model="m",
            stream=False,
            think=True,
            format="json",
            keep_alive="10m",
            options={"temperature": 0.1, "num_ctx": 2048, "stop": ["END"]},
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is [img] this?", "images": [PIXEL]},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}
                    ],
                },
                {"role": "tool", "content": "sunny", "tool_name": "weather"},
            ],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
        )
        recorder.save("ollama-python", "/api/chat")


def claude_code(folder: Path) -> None:
    recorder = Recorder()
    with recorder as url, tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "sk-local",
            "HOME": home,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        command = [str(folder / "node_modules/.bin/claude"), "-p", "Say hi.", "--model", "m"]
        subprocess.run(command, env=env, cwd=home, timeout=120, check=False)
        recorder.save("claude-code", "/v1/messages")


def codex(folder: Path) -> None:
    recorder = Recorder()
    with recorder as url, tempfile.TemporaryDirectory() as home:
        config = Path(home) / "config.toml"
        config.write_text(
            'model = "m"\nmodel_provider = "local"\n[model_providers.local]\n'
            f'name = "local"\nbase_url = "{url}/v1"\nwire_api = "responses"\n'
        )
        env = {**os.environ, "CODEX_HOME": home, "HOME": home}
        command = [
            str(folder / "node_modules/.bin/codex"),
            "exec",
            "--skip-git-repo-check",
            "Say hi.",
        ]
        subprocess.run(command, env=env, cwd=home, timeout=120, check=False)
        recorder.save("codex", "/v1/responses")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "sdks":
        sdks()
    elif what == "claude-code" and len(sys.argv) > 2:
        claude_code(Path(sys.argv[2]))
    elif what == "codex" and len(sys.argv) > 2:
        codex(Path(sys.argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
