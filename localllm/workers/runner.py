"""A worker process seen from the server: spawn it, talk to it, notice when it dies.

Each runner owns one `python -m localllm.engine.worker` process and one end
of a socket pair, which the server's event loop reads (`frames.py`): the
worker's messages become events for the request they belong to. When the
process dies (llama.cpp aborted, the OOM killer, a signal), every request it
held ends with an error naming the cause (the last line of its log) and the
server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localllm.engine.llamalog import crash_reason
from localllm.engine.protocol import (
    Cancel,
    Done,
    Embed,
    Embedded,
    Event,
    Failed,
    Generate,
    Load,
    Loaded,
    LoadFailed,
    Piece,
    Rank,
    Ranked,
    Render,
    Rendered,
)
from localllm.errors import ContextOverflow, LocalLLMError
from localllm.workers.frames import Frames, frame
from localllm.workers.worker_log import WorkerLog

_READ = 1 << 18
"""Bytes read at most each time the socket is readable (a step's events are far less)."""


class RunnerError(LocalLLMError):
    """The model could not be loaded, or its worker process died."""

    status = 500


class WorkerCrashed(RunnerError):
    """The worker died by a signal (a crash in llama.cpp) while it loaded the model."""


@dataclass
class Speculation:
    """What a model's guessed tokens earned over the answers it gave (`localllm ps`)."""

    drafted: int = 0
    accepted: int = 0
    tokens: int = 0
    passes: int = 0

    def add(self, done: Done) -> None:
        self.drafted += done.drafted
        self.accepted += done.accepted
        self.tokens += done.eval_tokens
        self.passes += done.passes

    def to_dict(self) -> dict[str, Any]:
        return {
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance": round(self.accepted / self.drafted, 3) if self.drafted else None,
            "tokens_per_pass": round(self.tokens / self.passes, 2) if self.passes else None,
        }


class Runner:
    def __init__(self, name: str, load: Load, log_path: Path, on_death: Callable[[Runner], None]):
        self.name = name
        self.load_request = load
        self.log_path = log_path
        self.on_death = on_death
        self.loaded: Loaded | None = None
        self.in_flight = 0
        self.kv_used = 0
        """KV cache cells its slots held when its last answer ended."""
        """Requests admitted: those running (up to `parallel`) and those waiting."""
        self.last_used = time.monotonic()
        self.expires_at: float | None = None
        """Wall-clock time of unloading when idle (None: never)."""
        self.expiry: asyncio.TimerHandle | None = None
        self.unload_when_idle = False
        """Asked to unload (keep_alive 0, stop, delete) while requests ran: done once idle."""
        self.dead = False
        self.speculation = Speculation()
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[Event]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._frames = Frames()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first: asyncio.Future[Loaded | LoadFailed] | None = None
        self.log: WorkerLog | None = None
        self.crashed = False
        """The worker died by a signal before the model was loaded."""

    # --- life -------------------------------------------------------------------------

    async def start(self) -> Loaded:
        """Spawn the worker and load the model; RunnerError with llama.cpp's reason if not."""
        self._loop = asyncio.get_running_loop()
        self._first = self._loop.create_future()
        parent, child = socket.socketpair()
        self.log = WorkerLog(self.log_path)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "localllm.engine.worker", str(child.fileno())],
                env=worker_env(os.environ),
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=self.log.fd,
                stderr=self.log.fd,
            )
        finally:
            self.log.spawned()
        child.close()
        self._sock = parent
        self._send(self.load_request)
        self._loop.add_reader(parent.fileno(), self._readable)
        first = await self._first
        if isinstance(first, LoadFailed):
            self.stop()
            error = WorkerCrashed if self.crashed else RunnerError
            raise error(f"model {self.name!r} could not be loaded: {first.message}")
        self.loaded = first
        return first

    def stop(self) -> None:
        """End the worker: closing its socket makes it exit; a stuck one is killed."""
        self.dead = True
        self.abort_all(f"the model {self.name!r} was unloaded")
        if self.expiry is not None:
            self.expiry.cancel()
        self._close()
        process = self._process
        if process is not None and process.poll() is None:
            threading.Thread(target=_reap, args=(process,), daemon=True).start()

    @property
    def parallel(self) -> int:
        """Requests the worker runs at once (its slots); more wait in its queue."""
        settings = self.loaded.settings if self.loaded else self.load_request.settings
        return max(1, settings.n_seq_max)

    @property
    def context(self) -> int:
        """Tokens of context each request has (its slot's)."""
        settings = self.loaded.settings if self.loaded else self.load_request.settings
        return settings.n_ctx_seq

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # --- requests ---------------------------------------------------------------------

    async def generate(self, request: Generate) -> AsyncIterator[Piece | Done]:
        """The pieces of one generation, then its Done; RunnerError on failure.
        Leaving early (a client that disconnected) cancels it in the worker."""
        rid = next(self._ids)
        request = replace(request, id=rid)
        queue = self._open(rid)
        finished = False
        try:
            self._send(request)
            while True:
                event = await queue.get()
                if isinstance(event, Failed):
                    finished = True
                    raise _failure(event)
                assert isinstance(event, Piece | Done)
                if isinstance(event, Done):
                    finished = True
                    self.speculation.add(event)
                yield event
                if finished:
                    return
        finally:
            self._queues.pop(rid, None)
            if not finished and not self.dead:
                self._send(Cancel(rid))

    async def embed(self, inputs: tuple[str, ...], truncate: bool) -> Embedded:
        event = await self._ask(lambda rid: Embed(rid, inputs, truncate))
        assert isinstance(event, Embedded)
        return event

    async def rank(self, query: str, documents: tuple[str, ...], truncate: bool) -> Ranked:
        event = await self._ask(lambda rid: Rank(rid, query, documents, truncate))
        assert isinstance(event, Ranked)
        return event

    async def render(self, request: Generate) -> Rendered:
        """The prompt text `request` would feed the model (the worker renders it)."""
        event = await self._ask(lambda rid: Render(rid, replace(request, id=rid)))
        assert isinstance(event, Rendered)
        return event

    async def _ask(self, message: Callable[[int], object]) -> Event:
        """Send a request that has one answer, and wait for it; RequestFailed if the
        answer is a failure."""
        rid = next(self._ids)
        queue = self._open(rid)
        try:
            self._send(message(rid))
            event = await queue.get()
        finally:
            self._queues.pop(rid, None)
        if isinstance(event, Failed):
            raise _failure(event)
        return event

    def abort_all(self, message: str) -> None:
        """End every request of this runner with `message` (server shutdown)."""
        for rid, queue in list(self._queues.items()):
            queue.put_nowait(Failed(rid, 503, message))

    def _open(self, rid: int) -> asyncio.Queue[Event]:
        if self.dead:
            raise RunnerError(f"the runner of {self.name!r} has stopped")
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[rid] = queue
        return queue

    def _send(self, message: object) -> None:
        try:
            if self._sock is not None:
                self._sock.sendall(frame(message))
        except OSError:
            pass  # the reading sees the death and fails the requests

    # --- reading, in the event loop ---------------------------------------------------

    def _readable(self) -> None:
        """The socket has bytes (or its end): the messages they complete, dispatched."""
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(_READ, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end: it is exiting
            self._close()
            threading.Thread(target=self._wait_for_exit, daemon=True).start()
            return
        for message in self._frames.feed(data):
            self._dispatch(message)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _wait_for_exit(self) -> None:
        """Off the loop: the worker's exit status, then `_died` in the loop."""
        code = self._process.wait() if self._process else None
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the server's loop has closed
                loop.call_soon_threadsafe(self._died, code)

    def _dispatch(self, message: object) -> None:
        if isinstance(message, list):  # one decode step's events, one per running request
            for event in message:
                self._dispatch(event)
            return
        if isinstance(message, Loaded | LoadFailed):
            if self._first is not None and not self._first.done():
                self._first.set_result(message)
            return
        if isinstance(message, Done):
            self.kv_used = message.kv_used
        rid = getattr(message, "id", None)
        queue = self._queues.get(rid) if isinstance(rid, int) else None
        if queue is not None:
            queue.put_nowait(message)  # type: ignore[arg-type]

    def _died(self, code: int | None) -> None:
        expected = self.dead
        self.dead = True
        if expected:
            return
        reason = (
            f"the model runner of {self.name!r} stopped unexpectedly "
            f"({_exit_text(code)}): {self._cause()}"
        )
        print(f"localllm: {reason}", file=sys.stderr, flush=True)
        if self._first is not None and not self._first.done():
            self.crashed = code is not None and code < 0  # by a signal: llama.cpp crashed
            self._first.set_result(LoadFailed(reason))
        for rid, queue in list(self._queues.items()):
            queue.put_nowait(Failed(rid, 500, reason))
        self.on_death(self)

    def _cause(self) -> str:
        """A worker of this model that no longer listens, else the worker's log."""
        from localllm.remote.workers import answers

        down = [e for e in self.load_request.settings.workers if not answers(e)]
        if down:
            hosts = ", ".join(down)
            return f"the RPC worker at {hosts} stopped answering (planned without until it is back)"
        return self.log_tail()

    def log_tail(self) -> str:
        """The line of this worker's own log that best says why it died."""
        if self.log is None:
            return "no log"
        self.log.wait()  # it has exited: what it wrote last is still in the pipe
        return crash_reason(self.log.tail())


class RequestFailed(LocalLLMError):
    """The worker refused or failed one request (the status says how to answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _failure(event: Failed) -> LocalLLMError:
    if len(event.overflow) == 2:
        tokens, n_ctx = event.overflow
        return ContextOverflow(event.message, tokens, n_ctx)
    return RequestFailed(event.status, event.message)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the server's, with CUDA numbering GPUs in PCI bus order
    (`CUDA_DEVICE_ORDER=PCI_BUS_ID`) unless set otherwise. NVML, which the hardware
    report and so the planner read, numbers them that way; CUDA's default puts the
    fastest first, so on a machine with unlike GPUs a plan for "GPU1" would otherwise
    land on another card."""
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", **environ}


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
