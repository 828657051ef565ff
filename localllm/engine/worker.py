"""A model's worker process: `python -m localllm.engine.worker FD`.

One process per loaded model, as Ollama runs its runners: llama.cpp aborts
the whole process on some malformed files, and ending the process is the
only sure way to give all of a model's memory back. The server talks to it
over the socket pair whose end is FD, with the `protocol` messages: `Load`
first, then requests. Requests run one at a time in arrival order; between
any two decode steps the worker reads what has arrived, so a `Cancel` stops
a generation within one token. When the server goes away (the socket
closes) the worker exits.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Generator
from multiprocessing.connection import Connection

from localllm.engine.protocol import (
    Cancel,
    Done,
    Embed,
    Failed,
    Generate,
    Load,
    LoadFailed,
    Request,
)
from localllm.engine.session import Session, Step


class Worker:
    def __init__(self, conn: Connection, session: Session) -> None:
        self.conn = conn
        self.session = session
        self.queue: deque[Generate | Embed] = deque()
        self.current: Generator[Step] | None = None
        self.current_id = -1
        self.cancel_current = False

    def run(self) -> None:
        while True:
            idle = self.current is None and not self.queue
            while idle or self.conn.poll(0):
                self._receive(self.conn.recv())  # EOFError: the server is gone
                idle = False
            if self.current is None:
                if self.queue:
                    self._start(self.queue.popleft())
            else:
                self._step()

    def _receive(self, message: Request) -> None:
        if isinstance(message, Cancel):
            if message.id == self.current_id:
                self.cancel_current = True
            elif any(r.id == message.id for r in self.queue):
                self.queue = deque(r for r in self.queue if r.id != message.id)
                self.conn.send(Failed(message.id, 499, "cancelled"))
        else:
            self.queue.append(message)

    def _start(self, request: Generate | Embed) -> None:
        if isinstance(request, Embed):
            self.conn.send(self.session.embed(request))
            return
        self.current = self.session.generate(request)
        self.current_id = request.id
        self.cancel_current = False

    def _step(self) -> None:
        assert self.current is not None
        if self.cancel_current:
            self.current.close()
            self._finish(Failed(self.current_id, 499, "cancelled"))
            return
        try:
            step = next(self.current)
        except StopIteration:
            step = Step(Failed(self.current_id, 500, "the generation ended without a result"))
        except Exception as exc:  # a llama.cpp failure on this request, not the worker's
            step = Step(Failed(self.current_id, 500, f"generation failed: {exc}"))
        if isinstance(step.event, Done | Failed):
            self._finish(step.event)
        elif step.event is not None:
            self.conn.send(step.event)

    def _finish(self, event: Done | Failed) -> None:
        self.conn.send(event)
        self.current = None
        self.current_id = -1


def main(argv: list[str]) -> int:
    from localllm.engine.model import LoadError, load

    conn = Connection(int(argv[1]))
    request = conn.recv()
    assert isinstance(request, Load)
    try:
        model, loaded = load(request)
    except LoadError as exc:
        conn.send(LoadFailed(str(exc)))
        return 1
    conn.send(loaded)
    # The server closing our socket ends the loop: unload by exiting.
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        Worker(conn, Session(model)).run()
    sys.stderr.flush()
    os._exit(0)  # the OS frees the model at once; llama.cpp's teardown adds nothing


if __name__ == "__main__":
    sys.exit(main(sys.argv))
