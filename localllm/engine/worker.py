"""A model's worker process: `python -m localllm.engine.worker FD`.

One process per loaded model, as Ollama runs its runners: llama.cpp aborts
the whole process on some malformed files, and ending the process is the
only sure way to give all of a model's memory back. The server talks to it
over the socket pair whose end is FD, with the `protocol` messages: `Load`
first, then requests, which the batching `Engine` runs together. A reader
thread takes messages off the socket and tokenizes prompts (`inbox`); between
any two decode steps the worker takes what is ready, so a new request joins at
the next step and a `Cancel` stops a generation within one token.
When the server goes away (the socket closes) the worker exits.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from localllm.engine.batch import Engine
from localllm.engine.inbox import Inbox, Message, render
from localllm.engine.profile import StepProfile
from localllm.engine.protocol import Cancel, Load, LoadFailed, Render
from localllm.errors import LocalLLMError

if TYPE_CHECKING:
    from localllm.engine.draft import DraftModel
    from localllm.engine.model import LlamaModel


GATHER_S = 0.005
"""How long an idle worker given a request waits at most for the reader to take in what
else is on the socket (a long prompt being tokenized meanwhile is not waited for)."""


def serve(conn: Connection, engine: Engine) -> None:
    """Requests in, events out, until the socket closes (EOFError).

    A request's own failure ends that request inside the engine. Should a step fail
    anyway (a bug), the requests it held end with the reason and the worker goes on:
    only llama.cpp aborting ends the process, since its state is then unknown."""
    inbox = Inbox(conn, engine)  # reads and tokenizes beside this loop
    engine.sink = inbox.send  # an overlapped step sends last step's text while it computes
    ended = 0  # when the last step ended, while streams went on (for the profile)
    while True:
        while not engine.busy or inbox.waiting():
            idle = not engine.busy
            _receive(inbox, engine, inbox.get())
            if idle:  # others sent with it start in the same step
                inbox.caught_up(GATHER_S)
        profile = engine.profile
        before, began = dict(profile.ns) if profile is not None else {}, time.perf_counter_ns()
        try:
            events = engine.step()
        except (BrokenPipeError, ConnectionResetError):
            raise  # the server went away while the step sent (`Engine.sink`): exit
        except Exception as exc:
            traceback.print_exc()
            events = engine.fail_all(f"the model's worker failed a step ({type(exc).__name__})")
        if events:
            sent_from = time.perf_counter_ns()
            inbox.send(events)  # one message per step, however many streams advanced
            if profile is not None:
                profile.add("send", time.perf_counter_ns() - sent_from)
        if profile is not None:
            now, waited = time.perf_counter_ns(), began - ended if ended else 0
            slow = profile.slow_line(before, now - began, waited, began)
            if slow is not None:
                print(slow, file=sys.stderr, flush=True)
            ended = now if engine.busy else 0
            if profile.due() or not engine.busy:
                print(profile.line(), file=sys.stderr, flush=True)


def _receive(inbox: Inbox, engine: Engine, message: Message) -> None:
    if isinstance(message, Render):  # one with images: answered at once, nothing to decode
        inbox.send(render(engine, message))
    elif isinstance(message, Cancel):
        failed = engine.cancel(message.id)
        if failed is not None:
            inbox.send(failed)
    else:
        engine.submit(message)


def main(argv: list[str]) -> int:
    from localllm.engine.model import load

    conn = Connection(int(argv[1]))
    request = conn.recv()
    assert isinstance(request, Load)
    try:
        model, loaded = load(request)
        draft = _load_draft(request, model)
        projector = None
        if request.projector is not None:
            from localllm.engine.vision import Projector

            projector = Projector(request.projector, model)
            loaded = replace(loaded, vision=True)
    except LocalLLMError as exc:
        conn.send(LoadFailed(str(exc)))
        return 1
    conn.send(loaded)
    cache = None
    if request.prompt_cache is not None:
        from localllm.engine.prompt_cache import PromptCache

        cache = PromptCache(Path(request.prompt_cache), request.prompt_cache_bytes)
    profile = StepProfile() if os.environ.get("LOCALLLM_PROFILE") else None
    engine = Engine(model, profile, draft, projector=projector, prompt_cache=cache)
    # The server closing our socket ends the loop: unload by exiting.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        serve(conn, engine)
    if cache is not None:  # what the slots hold outlives the worker
        with contextlib.suppress(Exception):
            cache.save(model, engine.slots)
    sys.stderr.flush()
    os._exit(0)  # the OS frees the model at once; llama.cpp's teardown adds nothing


def _load_draft(request: Load, target: LlamaModel) -> DraftModel | None:
    """The draft model the load names, checked against the model; LocalLLMError saying
    why it cannot be used."""
    if request.draft is None:
        return None
    from localllm.engine.draft import DraftModel
    from localllm.engine.model import LlamaModel, warm_up

    try:
        model = LlamaModel([request.draft.path], request.draft.settings, ())
    except LocalLLMError as exc:
        raise LocalLLMError(f"the draft model did not load: {exc}") from None
    warm_up(model)  # as the model's: a backend that crashes does it while loading
    return DraftModel(model, target)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
