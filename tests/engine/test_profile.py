"""The worker's step profile: running totals, and a slow step written out on its own."""

from __future__ import annotations

import json

from localllm.engine.profile import PHASES, PREFIX, SLOW_NS, SLOW_PREFIX, StepProfile, breakdown


def test_a_slow_step_is_written_out_phase_by_phase() -> None:
    profile = StepProfile()
    profile.add("decode", 5_000_000)
    before = dict(profile.ns)
    profile.add("decode", 40_000_000)
    profile.add("batch", 2_000_000)
    profile.rows, profile.prompt_rows = 544, 512
    assert profile.slow_line(before, SLOW_NS - 1) is None  # an ordinary step: nothing
    line = profile.slow_line(before, 60_000_000)
    assert line is not None and line.startswith(SLOW_PREFIX)
    step = json.loads(line[len(SLOW_PREFIX) :])
    assert step["ms"] == 60.0 and step["rows"] == 544 and step["prompt_rows"] == 512
    assert step["phases_ms"]["decode"] == 40.0  # this step's, not the totals'
    assert step["phases_ms"]["batch"] == 2.0 and set(step["phases_ms"]) == set(PHASES)
    line = profile.slow_line(before, 10_000_000, waited_ns=45_000_000, at_ns=3_500_000_000)
    assert line is not None  # a short step after a long wait outside it: the gap counts
    step = json.loads(line[len(SLOW_PREFIX) :])
    assert step["waited_ms"] == 45.0 and step["at"] == 3.5


def test_totals_read_back_per_step() -> None:
    first, profile = StepProfile(), StepProfile()
    profile.steps, profile.tokens = 10, 40
    profile.add("decode", 30_000_000)
    line = profile.line()
    assert line.startswith(PREFIX)
    totals = json.loads(line[len(PREFIX) :])
    per_step = breakdown(json.loads(first.line()[len(PREFIX) :]), totals)
    assert per_step["decode"] == 3.0 and per_step["tokens_per_step"] == 4.0
