"""What reaches a model's worker, read and tokenized beside the step loop.

Tokenizing a long prompt is slow: a 32k-token prompt takes hundreds of milliseconds
of one core. Done on the thread that decodes, it held every running stream of the
model that long (a 511 ms gap between two tokens of each, on an H200). A reader
thread takes each message off the socket, tokenizes the prompts it can (text:
llama.cpp's tokenizer reads only the vocabulary and lets go of the GIL, as
llama-server tokenizes on its HTTP threads), answers a text `Render` itself, and
hands the rest to the step loop in arrival order, so a `Cancel` still follows the
request it cancels. Prompts with images stay on the step loop: libmtmd's context is
the projector's, used there.

Requests sent together start together: an idle step loop that takes the first waits
(`caught_up`) until the reader has read what was already on the socket. Four clients
starting at once reached the worker within a fifth of a millisecond, yet the first
went into a step of its own and the other three waited for it (on two CPU cores, 0.4 s).
"""

from __future__ import annotations

import queue
import threading
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from localllm.engine import image_slots
from localllm.engine.prompt import Prepared, prompt_text, prompt_tokens
from localllm.engine.protocol import Event, Failed, Generate, Render, Rendered, Request
from localllm.errors import LocalLLMError, describe

if TYPE_CHECKING:
    from localllm.engine.batch import Engine


Message = Request | Prepared


class _Closed:
    """The socket closed: the server went away."""


class Inbox:
    """The worker's side of its socket: messages in through a reader thread, events out
    under one lock (the reader answers renders on the same socket)."""

    def __init__(self, conn: Connection, engine: Engine) -> None:
        self._conn = conn
        self._engine = engine
        self._messages: queue.SimpleQueue[Message | _Closed] = queue.SimpleQueue()
        self._sending = threading.Lock()
        self._idle = threading.Event()
        """Set while the reader has found the socket empty since its last message."""
        self._reader = threading.Thread(target=self._read, name="inbox", daemon=True)
        self._reader.start()

    def send(self, message: list[Event] | Event) -> None:
        with self._sending:
            self._conn.send(message)

    def waiting(self) -> bool:
        """Whether a message is ready for the step loop."""
        return not self._messages.empty()

    def caught_up(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until the reader has taken in every message
        already on the socket."""
        self._idle.wait(timeout)

    def get(self) -> Message:
        """The next message (waiting for one); EOFError once the socket has closed."""
        message = self._messages.get()
        if isinstance(message, _Closed):
            self._messages.put(message)  # every later call ends too
            raise EOFError
        return message

    def _read(self) -> None:
        engine = self._engine
        while True:
            try:
                if not self._conn.poll():
                    self._idle.set()
                message = self._conn.recv()
            except (EOFError, OSError):
                self._idle.set()
                self._messages.put(_Closed())
                return
            self._idle.clear()
            if isinstance(message, Render) and not message.request.images:
                self.send(render(engine, message))
            elif isinstance(message, Generate) and not message.images:
                self._messages.put(prepare(engine, message))
            else:
                self._messages.put(message)


def prepare(engine: Engine, request: Generate) -> Prepared:
    """`request` with its prompt's tokens for one of `engine`'s slots."""
    try:
        return Prepared(request, prompt_tokens(engine.model, request, engine.n_ctx_slot))
    except Exception as exc:  # the step loop reports it, in order, as before
        return Prepared(request, [], exc)


def render(engine: Engine, message: Render) -> Rendered | Failed:
    """The prompt text of a request, and its token count, without running it."""
    try:
        text = prompt_text(engine.model, message.request)
        m, request = engine.model, message.request  # each image counts as its tokens
        tokens, vision = image_slots.prompt(m, engine.projector, request, 1 << 30)
        if vision is not None:
            vision.close()
    except (LocalLLMError, ValueError) as exc:
        return Failed(message.id, 400, str(exc), getattr(exc, "overflow", ()))
    except Exception as exc:
        return Failed(message.id, 500, f"the template failed: {describe(exc)}")
    return Rendered(message.id, text, len(tokens))
