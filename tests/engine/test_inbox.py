"""The worker's inbox: prompts are tokenized by its reader thread, before the step loop
takes them, renders are answered there, and messages keep their order."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from localllm.engine.batch import Engine
from localllm.engine.inbox import Inbox
from localllm.engine.model import LlamaModel
from localllm.engine.prompt import Prepared
from localllm.engine.protocol import (
    Cancel,
    Done,
    Failed,
    Generate,
    Piece,
    Render,
    Rendered,
    Sampling,
)
from localllm.planner.settings import LoadSettings
from localllm.workers.frames import frame

GREEDY = Sampling(temperature=0, num_predict=8, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def model(tiny_files: dict[str, Path]) -> Iterator[LlamaModel]:
    settings = LoadSettings(n_gpu_layers=0, n_ctx=2 * 256, n_seq_max=2, n_threads=2)
    m = LlamaModel([str(tiny_files["tiny"])], settings, ())
    yield m
    m.close()


@pytest.fixture
def wired(model: LlamaModel) -> Iterator[tuple[Engine, Inbox, Connection]]:
    engine = Engine(model)
    server, worker = Pipe()
    yield engine, Inbox(worker, engine), server
    server.close()
    engine.close()


def finish(engine: Engine) -> list[object]:
    events: list[object] = []
    while engine.busy:
        events += engine.step()
    return events


def text(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, Piece))


def test_a_prompt_arrives_tokenized(wired: tuple[Engine, Inbox, Connection]) -> None:
    engine, inbox, server = wired
    request = Generate(1, prompt="hello there, tokens", sampling=GREEDY)
    server.send(request)
    got = inbox.get()
    assert isinstance(got, Prepared)
    assert got.request == request and got.error is None
    assert got.tokens == engine.model.tokenize("hello there, tokens", add_special=True)
    engine.submit(got)
    through_inbox = finish(engine)
    engine.submit(Generate(2, prompt="hello there, tokens", sampling=GREEDY))
    direct = finish(engine)
    first, second = through_inbox[-1], direct[-1]
    assert isinstance(first, Done) and isinstance(second, Done)
    assert text(through_inbox) == text(direct)
    assert first.prompt_tokens == second.prompt_tokens


def test_a_prompt_too_long_fails_in_its_turn(wired: tuple[Engine, Inbox, Connection]) -> None:
    engine, inbox, server = wired
    server.send(Generate(3, prompt="word " * 2000, sampling=GREEDY))
    got = inbox.get()
    assert isinstance(got, Prepared) and got.error is not None
    engine.submit(got)
    (failed,) = engine.step()
    assert isinstance(failed, Failed) and failed.status == 400
    assert failed.overflow and failed.overflow[1] == engine.n_ctx_slot


def test_renders_are_answered_beside_the_loop(wired: tuple[Engine, Inbox, Connection]) -> None:
    _, inbox, server = wired
    server.send(Render(4, Generate(4, prompt="count me", sampling=GREEDY)))
    assert server.poll(30)  # answered with nothing taken off the inbox
    answer = server.recv()
    assert isinstance(answer, Rendered) and answer.prompt == "count me" and answer.tokens > 0
    assert not inbox.waiting()


def test_order_is_kept_and_a_closed_socket_ends(wired: tuple[Engine, Inbox, Connection]) -> None:
    _, inbox, server = wired
    server.send(Generate(5, prompt="first", sampling=GREEDY))
    server.send(Cancel(5))
    assert isinstance(inbox.get(), Prepared)
    assert inbox.get() == Cancel(5)
    server.close()
    for _ in range(2):  # and every later call
        with pytest.raises(EOFError):
            inbox.get()


def test_requests_sent_together_are_all_in_once_the_reader_caught_up(
    wired: tuple[Engine, Inbox, Connection],
) -> None:
    _, inbox, server = wired
    burst = [Generate(i, prompt=f"prompt {i}", sampling=GREEDY) for i in range(4)]
    with socket.socket(fileno=os.dup(server.fileno())) as sock:  # all four in one write
        sock.sendall(b"".join(frame(m) for m in burst))
    first = inbox.get()
    inbox.caught_up(timeout=60.0)  # returns once the socket is read: no waiting it out
    rest = [inbox.get() for _ in range(3) if inbox.waiting()]
    assert [m.request.id for m in (first, *rest) if isinstance(m, Prepared)] == [0, 1, 2, 3]
    inbox.caught_up(timeout=60.0)  # nothing more on the socket: at once
    assert not inbox.waiting()
