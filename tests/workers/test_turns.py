"""A busy model's slots handed out in turn by client (`workers.turns`), without a model."""

from __future__ import annotations

import asyncio

import pytest

from localllm.workers.turns import QueueTimeout, Turns


def test_a_lone_client_is_served_between_a_busy_clients_requests() -> None:
    async def scenario() -> list[str]:
        turns = Turns(slots=1)
        served: list[str] = []
        await turns.take("busy", 10, "m")  # the one slot

        async def request(who: str) -> None:
            await turns.take(who, 10, "m")
            served.append(who)

        tasks = [asyncio.create_task(request("busy")) for _ in range(4)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(request("lone")))  # arrives after all four
        await asyncio.sleep(0)
        for _ in range(5):
            turns.give()  # each request ends in turn
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return served

    served = asyncio.run(scenario())
    assert served.index("lone") == 1  # after one of the busy client's, not after all four


def test_free_slots_are_taken_at_once_and_given_back() -> None:
    async def scenario() -> int:
        turns = Turns(slots=2)
        await turns.take("a", 1, "m")
        await turns.take("b", 1, "m")
        turns.give()
        turns.give()
        return turns.busy

    assert asyncio.run(scenario()) == 0


def test_a_wait_is_bounded_and_a_slot_is_never_lost() -> None:
    async def scenario() -> tuple[int, int]:
        turns = Turns(slots=1)
        await turns.take("a", 1, "m")
        with pytest.raises(QueueTimeout, match="no free slot for 0 s"):
            await turns.take("b", 0.01, "m")
        waiter = asyncio.create_task(turns.take("c", 10, "m"))
        await asyncio.sleep(0)
        waiter.cancel()  # its client went away
        await asyncio.gather(waiter, return_exceptions=True)
        turns.give()  # nobody waits: the slot is free again
        return turns.busy, turns.waiting

    assert asyncio.run(scenario()) == (0, 0)


def test_waiters_fail_when_the_model_goes() -> None:
    async def scenario() -> None:
        turns = Turns(slots=1)
        await turns.take("a", 1, "m")
        waiter = asyncio.create_task(turns.take("b", 10, "m"))
        await asyncio.sleep(0)
        turns.close(RuntimeError("unloaded"))
        with pytest.raises(RuntimeError, match="unloaded"):
            await waiter

    asyncio.run(scenario())
