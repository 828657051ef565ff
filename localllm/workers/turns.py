"""A model's slots, handed out in turn by client when they are all taken.

A worker decodes `parallel` requests at once; more used to wait in its own queue in
arrival order, so one client sending 64 requests held every slot until its 64th
began, and another client's single request waited behind all of them. Now a
request beyond the slots waits here, in its client's queue (its API key's, else
its address's); when a slot frees, the next client in turn gets it, and a client
with more waiting goes to the back of the line. A request that waits longer than
the bound is refused (503 with Retry-After), as one over `LOCALLLM_MAX_QUEUE` is.
"""

from __future__ import annotations

import asyncio
from collections import deque

from localllm.errors import LocalLLMError


class QueueTimeout(LocalLLMError):
    """A request waited for a slot longer than the bound."""

    status = 503
    retry_after_s = 5


class Turns:
    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.busy = 0
        """Slots given out."""
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._order: deque[str] = deque()
        """Clients with requests waiting, the next to be served first."""

    @property
    def waiting(self) -> int:
        return sum(sum(not f.done() for f in q) for q in self._waiting.values())

    async def take(self, who: str, timeout_s: float, model: str) -> None:
        """A slot for one request of client `who`: at once if one is free and nobody
        waits, else in `who`'s turn; QueueTimeout after `timeout_s`."""
        if self.busy < self.slots and not self._order:
            self.busy += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if who not in self._waiting:
            self._waiting[who] = deque()
            self._order.append(who)
        self._waiting[who].append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            if future.done() and not future.cancelled():
                self.give()  # handed a slot just as the wait ran out: pass it on
            future.cancel()
            raise QueueTimeout(
                f"model {model!r} had no free slot for {timeout_s:.0f} s (every slot busy, "
                f"{self.waiting} requests waiting); try again shortly"
            ) from None
        except asyncio.CancelledError:  # the client went away while it waited
            if future.done() and not future.cancelled():
                self.give()
            future.cancel()
            raise

    def give(self) -> None:
        """A request's slot is free: to the next client in turn, else free."""
        while self._order:
            who = self._order.popleft()
            queue = self._waiting[who]
            while queue and queue[0].done():  # timed out or gone
                queue.popleft()
            if not queue:
                del self._waiting[who]
                continue
            future = queue.popleft()
            if queue:
                self._order.append(who)  # its next request waits for its next turn
            else:
                del self._waiting[who]
            future.set_result(None)
            return
        self.busy -= 1

    def close(self, error: BaseException) -> None:
        """The model went away: every waiting request fails with `error`."""
        for queue in self._waiting.values():
            for future in queue:
                if not future.done():
                    future.set_exception(error)
        self._waiting.clear()
        self._order.clear()
