"""The worker's messages read in the server's loop: the same objects as
`Connection.recv` gives, whatever pieces the socket hands over."""

from __future__ import annotations

import random
import socket
import threading
from multiprocessing.connection import Connection

from localllm.engine.protocol import Failed, Piece
from localllm.workers.frames import Frames, frame

MESSAGES: list[object] = [
    Piece(1, "hello"),
    [Piece(2, " wor"), Piece(3, "ld")],
    Failed(1, 503, "unloaded"),
    {"big": "x" * 300_000},  # longer than one read of the socket
    "",
]


def _sent_by_the_worker(messages: list[object]) -> bytes:
    """The bytes the worker's `Connection.send` puts on the wire."""
    ours, theirs = socket.socketpair()
    sender = Connection(theirs.detach())

    def send() -> None:
        for message in messages:
            sender.send(message)
        sender.close()

    thread = threading.Thread(target=send)  # a big message fills the socket's buffer
    thread.start()
    data = bytearray()
    with ours:
        while chunk := ours.recv(1 << 16):
            data += chunk
    thread.join()
    return bytes(data)


def test_messages_cut_anywhere_come_out_whole_and_in_order() -> None:
    wire = _sent_by_the_worker(MESSAGES)
    rng = random.Random(7)
    for _ in range(20):
        frames, got, at = Frames(), [], 0
        while at < len(wire):
            size = rng.choice([1, 3, 4, 5, 17, 4096, 1 << 18])
            got += frames.feed(wire[at : at + size])
            at += size
        assert got == MESSAGES
        assert frames.pending == 0


def test_a_partial_message_waits_for_its_rest() -> None:
    wire = _sent_by_the_worker([Piece(1, "abc")])
    frames = Frames()
    assert frames.feed(wire[:-1]) == []
    assert frames.pending == len(wire) - 1
    assert frames.feed(wire[-1:]) == [Piece(1, "abc")]


def test_what_the_server_sends_the_worker_reads_with_connection_recv() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        receiver = Connection(theirs.detach())
        for message in MESSAGES[:3]:
            ours.sendall(frame(message))
            assert receiver.recv() == message
        receiver.close()
