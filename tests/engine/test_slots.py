"""Which free slot a request takes (`engine.slots.choose`): its prefix first; beside
running streams a slot next to them, so llama.cpp decodes the step in one pass."""

from __future__ import annotations

from localllm.engine.slots import Slot, choose

PROMPT = list(range(100, 140))


def slots(*last_used: float) -> list[Slot]:
    return [Slot(seq, last_used=t) for seq, t in enumerate(last_used)]


def test_alone_a_new_prompt_takes_the_least_recently_used() -> None:
    free = slots(5.0, 1.0, 3.0, 2.0)
    assert choose(free, PROMPT).seq == 1


def test_beside_running_streams_a_slot_next_to_them() -> None:
    """Slots 0 and 1 run; the least recently used free slot is 5, but a stream there
    would be decoded in a pass of its own."""
    everyone = slots(9.0, 9.0, 8.0, 7.0, 6.0, 1.0)
    free = everyone[2:]
    assert choose(free, PROMPT, running={0, 1}).seq == 2


def test_a_hole_between_running_streams_first() -> None:
    """Running 0, 1, 3: slot 2 joins the two runs into one; slot 4 only extends one."""
    everyone = slots(9.0, 9.0, 8.0, 9.0, 1.0, 0.5)
    free = [everyone[2], everyone[4], everyone[5]]
    assert choose(free, PROMPT, running={0, 1, 3}).seq == 2


def test_a_slot_holding_the_prompts_start_wins_over_neighbours() -> None:
    everyone = slots(9.0, 9.0, 8.0, 1.0, 2.0)
    everyone[4].cached = PROMPT[:30]
    free = everyone[2:]
    assert choose(free, PROMPT, running={0, 1}).seq == 4
