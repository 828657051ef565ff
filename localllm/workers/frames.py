"""The worker's messages on the server's side of its socket, without a reader thread.

The worker speaks through `multiprocessing.connection.Connection` (a length, then a
pickle). The server reads that stream in its own event loop (`loop.add_reader`), as
the bytes come: a thread blocked in `recv` for each worker cost a thread wake-up, the
GIL and a write to the loop's self-pipe for every step's message, which on a machine
whose cores llama.cpp keeps busy took CPU from the model. `Frames` cuts whole
messages out of whatever the socket gave; `frame` is the other way, for what the
server sends.
"""

from __future__ import annotations

import pickle
import struct

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_LONG_MARK = -1
"""A length over 2**31-1: the short header says -1 and an 8-byte length follows."""


def frame(message: object) -> bytes:
    """`message` as `Connection.send` puts it on the wire."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > 0x7FFFFFFF:
        return _SHORT.pack(_LONG_MARK) + _LONG.pack(len(payload)) + payload
    return _SHORT.pack(len(payload)) + payload


class Frames:
    """Whole messages out of a byte stream cut anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """The messages `data` completes, in order; the rest waits for more bytes."""
        buffer = self._buffer
        buffer += data
        messages: list[object] = []
        start = 0
        while len(buffer) - start >= _SHORT.size:
            (size,) = _SHORT.unpack_from(buffer, start)
            head = _SHORT.size
            if size == _LONG_MARK:
                if len(buffer) - start < head + _LONG.size:
                    break
                (size,) = _LONG.unpack_from(buffer, start + head)
                head += _LONG.size
            end = start + head + size
            if len(buffer) < end:
                break
            messages.append(pickle.loads(buffer[start + head : end]))
            start = end
        if start:
            del buffer[:start]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of a message not yet whole."""
        return len(self._buffer)
